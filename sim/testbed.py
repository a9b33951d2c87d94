"""A Mininet network of Open vSwitch userspace switches driven by a ryute controller process.

Used by the integration tests, the demo and emulation. ``Testbed`` starts the controller as its
own process (the emulation talks to it through its API, never by import), builds the network
from a catalog topology, and on exit tears down exactly what it started: its controller by
pid, its hosts' shells by pid, its bridges and links by name. Never ``mn -c``: that kills
processes by name and deletes every ``*.log`` of the temporary folder.

A run that dies without tearing down (SIGKILL, power loss) leaves a record in the run folder;
the next ``Testbed`` removes what such a dead run left behind, and nothing else.
"""
from __future__ import annotations

import codecs
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from topologies.catalog import load_topology
from topologies.mininet import RyuteTopo

LOG = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_RUN_DIR = PROJECT_DIR / "runs" / "testbeds"
SWITCH_MTU = 1600
"""Switch ports carry MPLS-labelled frames: 4 bytes above the hosts' 1500."""


class TestbedError(RuntimeError):
    """The testbed could not start; the message says what to do."""

    __test__ = False  # not a pytest test class, despite the name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ovs_bridges() -> set[str]:
    out = subprocess.run(["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


def check_environment() -> None:
    """Root and a running Open vSwitch, or a clear error saying how to get them."""
    if os.geteuid() != 0:
        raise TestbedError("Mininet needs root (network namespaces, veth links, tc): run as "
                           "root, e.g. 'sudo make test'")
    try:
        ovs_bridges()
    except (OSError, subprocess.CalledProcessError) as error:
        raise TestbedError("Open vSwitch does not answer ('ovs-vsctl list-br' failed: "
                           f"{error}); start it with 'scripts/setup.sh system'") from error


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _terminate(pid: int, name_hint: str, timeout_s: float = 5.0) -> None:
    """End one process we started, making sure the pid still is what we started."""
    if not _pid_alive(pid) or name_hint not in _pid_cmdline(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def _delete_bridges(names: set[str]) -> None:
    for name in sorted(names & ovs_bridges()):
        subprocess.run(["ovs-vsctl", "--timeout=5", "--if-exists", "del-br", name], check=False)


def _delete_interfaces(names: list[str]) -> None:
    """Remove root-namespace veths by name (deleting one end removes its peer)."""
    existing = set(os.listdir("/sys/class/net"))
    for name in names:
        if name in existing:
            subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


def reap_dead_runs(run_dir: Path = DEFAULT_RUN_DIR) -> list[str]:
    """Remove what testbeds of dead processes left behind; returns the records handled."""
    handled = []
    for record_file in sorted(run_dir.glob("*.json")):
        try:
            record = json.loads(record_file.read_text())
        except (OSError, json.JSONDecodeError):
            record_file.unlink(missing_ok=True)
            continue
        if _pid_alive(record["owner_pid"]):
            continue
        LOG.warning("cleaning up after dead testbed run %s", record_file.name)
        if record.get("controller_pid"):
            _terminate(record["controller_pid"], "controller")
        for pid in record.get("host_pids", []):
            _terminate(pid, "mininet:")
        _delete_bridges(set(record.get("bridges", [])))
        _delete_interfaces(record.get("interfaces", []))
        record_file.unlink(missing_ok=True)
        handled.append(record_file.name)
    return handled


@dataclass
class Testbed:
    """Controller process + Mininet network of a catalog topology. Use as a context manager.

    ``topology`` is a catalog spec ("abilene", "fat-tree:k=4") or a topology file; the
    controller loads the same spec, so both sides agree on names and datapath ids.
    """

    topology: str
    hosts_per_switch: int = 1
    scale: float = 1000.0
    log_dir: Path = PROJECT_DIR / "runs" / "logs"
    controller_args: tuple[str, ...] = ()
    poll_interval_s: float = 2.0
    connect_timeout_s: float = 60.0
    run_dir: Path = DEFAULT_RUN_DIR
    ofp_port: int = field(default_factory=free_port)
    rest_port: int = field(default_factory=free_port)
    __test__ = False  # not a pytest test class, despite the name
    net: Any = field(default=None, init=False)
    owns_bridges: bool = field(default=False, init=False)
    controller: subprocess.Popen | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.graph = load_topology(self.topology)
        self.topo = RyuteTopo(self.graph, hosts_per_switch=self.hosts_per_switch,
                              scale=self.scale)
        self.name = f"{os.getpid()}-{self.ofp_port}"
        self.controller_log = Path(self.log_dir) / f"controller-{self.name}.log"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def bridges(self) -> set[str]:
        return set(self.topo.switches())

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Testbed:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        check_environment()
        Path(self.run_dir).mkdir(parents=True, exist_ok=True)
        reap_dead_runs(Path(self.run_dir))
        clashing = self.bridges & ovs_bridges()
        if clashing:
            raise TestbedError(f"bridges {sorted(clashing)} already exist and are not ours: "
                               "remove them (ovs-vsctl del-br) or pick other names")
        self.owns_bridges = True
        self._write_record()
        self._start_controller()
        self._start_network()

    def stop(self) -> None:
        """Tear down everything this testbed started; safe to call twice or after a failure."""
        if self.net is not None:
            interfaces = self._switch_interfaces()
            try:
                self.net.stop()
            except Exception:
                LOG.exception("Mininet stop failed; removing bridges and links by name")
            self.net = None
            _delete_interfaces(interfaces)
        if self.owns_bridges:
            _delete_bridges(self.bridges)
            self.owns_bridges = False
        if self.controller is not None:
            _terminate(self.controller.pid, "controller")
            self.controller.wait(timeout=10)
            self.controller = None
        self._record_file.unlink(missing_ok=True)

    # -- parts -----------------------------------------------------------------------------
    @property
    def _record_file(self) -> Path:
        return Path(self.run_dir) / f"{self.name}.json"

    def _write_record(self, **extra: Any) -> None:
        record = {"owner_pid": os.getpid(), "bridges": sorted(self.bridges),
                  # read back by reap_dead_runs() after this process died
                  "controller_pid": self.controller.pid if self.controller else None, **extra}
        self._record_file.write_text(json.dumps(record))

    def _start_controller(self) -> None:
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "controller.cli", "controller",
                   "--topology", self.topology, "--ofp-host", "127.0.0.1",
                   "--ofp-port", str(self.ofp_port), "--rest-port", str(self.rest_port),
                   "--poll-interval", str(self.poll_interval_s),
                   "--capacity-scale", str(self.scale), *self.controller_args]
        with open(self.controller_log, "wb") as log:
            self.controller = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                               cwd=PROJECT_DIR)
        self._write_record()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.controller.poll() is not None:
                raise TestbedError(f"controller exited with code {self.controller.returncode}; "
                                   f"see {self.controller_log}")
            try:
                self.get("/te/v1/status")
                return
            except OSError:
                time.sleep(0.2)
        raise TestbedError(f"controller REST API did not answer; see {self.controller_log}")

    def _start_network(self) -> None:
        from mininet.link import TCLink
        import mininet.node
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import OVSSwitch, RemoteController

        setLogLevel("warning")
        # Mininet decodes its shells' output strictly; a stray non-UTF-8 byte in it (seen once
        # at start-up) must not abort the whole network.
        mininet.node.getincrementaldecoder = partial(
            codecs.getincrementaldecoder("utf-8"), errors="replace")
        switch = partial(OVSSwitch, datapath="user", protocols="OpenFlow13", failMode="secure")
        self.net = Mininet(topo=self.topo, switch=switch, link=TCLink, controller=None,
                           autoSetMacs=False, build=False, cleanup=False, waitConnected=False)
        self.net.addController("c0", controller=RemoteController, ip="127.0.0.1",
                               port=self.ofp_port)
        self.net.build()
        self._write_record(host_pids=[host.pid for host in self.net.hosts],
                           interfaces=self._switch_interfaces())
        self.net.start()
        self._prepare_interfaces()
        if not self.net.waitConnected(timeout=self.connect_timeout_s):
            raise TestbedError(f"switches did not all connect in {self.connect_timeout_s} s; "
                               f"see {self.controller_log}")

    def _switch_interfaces(self) -> list[str]:
        return [intf.name for switch in self.net.switches for intf in switch.intfList()
                if intf.name != "lo"]

    def _prepare_interfaces(self) -> None:
        for host in self.net.hosts:
            for intf in host.intfList():
                # The userspace datapath does not fill in checksums the kernel left to the NIC.
                host.cmd(f"ethtool -K {intf} tx off >/dev/null 2>&1")
        for switch in self.net.switches:
            for intf in switch.intfList():
                if intf.name != "lo":
                    switch.cmd(f"ip link set {intf} mtu {SWITCH_MTU}")

    # -- access ----------------------------------------------------------------------------
    def get(self, path: str, timeout_s: float = 5.0) -> Any:
        with urllib.request.urlopen(self.rest_url + path, timeout=timeout_s) as response:
            return json.loads(response.read())

    def wait_for(self, predicate, timeout_s: float = 30.0, interval_s: float = 0.5) -> Any:
        """Poll ``predicate()`` until it returns something truthy; returns it or raises."""
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval_s)
        raise TimeoutError(f"condition not met in {timeout_s} s (last value: {last!r})")

    def dump_flows(self, switch: str) -> str:
        return subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", switch],
                              capture_output=True, text=True, check=True).stdout
