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
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

from api.client import ApiError, ControllerClient
from lab.config import CAPACITY_SCALE
from sim import runs
from topologies.catalog import load_topology
from topologies.mininet import RyuteTopo

LOG = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parents[1]
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
    """The process runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


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


def reap_dead_runs(run_dir: Path | None = None) -> list[str]:
    """Remove what testbeds of dead processes left behind; returns the records handled."""
    handled = []
    for record_file in sorted((run_dir or runs.runs_root() / "testbeds").glob("*.json")):
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
        for pid, name_hint in record.get("processes", []):
            _terminate(pid, name_hint)
        _delete_bridges(set(record.get("bridges", [])))
        _delete_interfaces(record.get("interfaces", []))
        record_file.unlink(missing_ok=True)
        handled.append(record_file.name)
    return handled


@dataclass
class Testbed:
    """Controller process + Mininet network of a catalog topology. Use as a context manager.

    ``topology`` is a catalog spec ("abilene", "fat-tree:k=4") or a topology file; the
    controller loads the same spec, so both sides agree on names and datapath ids, unless
    ``controller_topology`` tells it another one (a network that disagrees with the
    controller's topology file, on purpose).
    """

    topology: str
    hosts_per_switch: int = 1
    scale: float = CAPACITY_SCALE
    log_dir: Path = field(default_factory=lambda: runs.runs_root() / "logs")
    controller_args: tuple[str, ...] = ()
    poll_interval_s: float = 2.0
    connect_timeout_s: float = 60.0
    run_dir: Path = field(default_factory=lambda: runs.runs_root() / "testbeds")
    ofp_port: int = field(default_factory=free_port)
    rest_port: int = field(default_factory=free_port)
    controller_topology: str | None = None
    api_token: str | None = None
    """The controller's API token, handed to it in its environment (``$RYUTE_API_TOKEN``),
    never on its command line, where ``ps`` shows it to every user of the machine."""
    switch_prefix: str = "s"
    """Bridge names are prefix + dpid; another prefix lets two testbeds share one OVS."""
    host_prefix: str = "h"
    __test__ = False  # not a pytest test class, despite the name
    net: Any = field(default=None, init=False)
    owns_bridges: bool = field(default=False, init=False)
    controller: subprocess.Popen | None = field(default=None, init=False)
    restarts: int = field(default=0, init=False)
    processes: list = field(default_factory=list, init=False)
    """Commands started on hosts with ``popen`` (ended by ``stop`` if still running)."""

    def __post_init__(self) -> None:
        self.graph = load_topology(self.topology)
        self.topo = RyuteTopo(self.graph, hosts_per_switch=self.hosts_per_switch,
                              scale=self.scale, switch_prefix=self.switch_prefix,
                              host_prefix=self.host_prefix)
        self.name = f"{os.getpid()}-{self.ofp_port}"
        self.controller_log = Path(self.log_dir) / f"controller-{self.name}.log"
        self._record_extra: dict[str, Any] = {}

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def api(self) -> ControllerClient:
        """The controller's REST API, with the testbed's token."""
        return ControllerClient(self.rest_url, self.api_token, timeout_s=10.0)

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
        for process in self.processes:
            if process.poll() is None:
                _terminate(process.pid, _name_hint(process))
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    LOG.warning("process %d did not end", process.pid)
        self.processes = []
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
        self._stop_controller()
        self._record_file.unlink(missing_ok=True)

    def restart_controller(self, *, timeout_s: float = 30.0) -> None:
        """End the controller with SIGTERM and start a new one on the same ports.

        The switches keep their rules meanwhile (fail-mode secure) and reconnect by themselves;
        the new controller logs to a new file (``controller_log`` then names it). Returns once
        the new REST API answers; reconciliation follows (see the controller's log and status).
        """
        self._stop_controller()
        self.restarts += 1
        self.controller_log = Path(self.log_dir) / f"controller-{self.name}-r{self.restarts}.log"
        self._start_controller(timeout_s=timeout_s)

    def pause_controller(self) -> None:
        """Freeze the controller (SIGSTOP): its connections stay open but nothing answers,
        as a controller that hangs. The switches go on with the rules and groups they hold."""
        if self.controller is None:
            raise TestbedError("no controller to pause")
        os.kill(self.controller.pid, signal.SIGSTOP)

    def resume_controller(self) -> None:
        """Let a paused controller go on (SIGCONT); a running one is not affected."""
        if self.controller is not None and self.controller.poll() is None:
            os.kill(self.controller.pid, signal.SIGCONT)

    def _stop_controller(self) -> None:
        if self.controller is not None:
            self.resume_controller()  # a stopped process would not see SIGTERM
            _terminate(self.controller.pid, "controller")
            self.controller.wait(timeout=10)
            self.controller = None

    # -- parts -----------------------------------------------------------------------------
    @property
    def _record_file(self) -> Path:
        return Path(self.run_dir) / f"{self.name}.json"

    def _write_record(self, **extra: Any) -> None:
        self._record_extra.update(extra)
        record = {"owner_pid": os.getpid(), "bridges": sorted(self.bridges),
                  # read back by reap_dead_runs() after this process died
                  "controller_pid": self.controller.pid if self.controller else None,
                  "processes": [[process.pid, _name_hint(process)]
                                for process in self.processes if process.poll() is None],
                  **self._record_extra}
        self._record_file.write_text(json.dumps(record))

    def _start_controller(self, timeout_s: float = 30.0) -> None:
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "lab.cli", "controller",
                   "--topology", self.controller_topology or self.topology,
                   "--ofp-host", "127.0.0.1",
                   "--ofp-port", str(self.ofp_port), "--rest-port", str(self.rest_port),
                   "--poll-interval", str(self.poll_interval_s),
                   "--capacity-scale", str(self.scale), *self.controller_args]
        env = {**os.environ, **({"RYUTE_API_TOKEN": self.api_token} if self.api_token else {})}
        with open(self.controller_log, "wb") as log:
            self.controller = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                               cwd=PROJECT_DIR, env=env)
        self._write_record()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.controller.poll() is not None:
                raise TestbedError(f"controller exited with code {self.controller.returncode}; "
                                   f"see {self.controller_log}")
            try:
                self.api.status()
                return
            except ApiError:
                time.sleep(0.2)
        raise TestbedError(f"controller REST API did not answer; see {self.controller_log}")

    def _start_network(self) -> None:
        import mininet.node
        from mininet.link import TCLink
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

    def dump_groups(self, switch: str) -> dict[int, GroupEntry]:
        """The groups of one switch, read back with ``ovs-ofctl dump-groups``."""
        out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-groups", switch],
                             capture_output=True, text=True, check=True).stdout
        return parse_groups(out)

    def own_flows(self, switch: str, cookie: int) -> dict[tuple, str]:
        """``{(table, priority, match): actions}`` of one switch's rules with ``cookie``; a
        rule with another cookie appears under the key ``("other", line)``, so that anything
        not ours is visible too."""
        return parse_flows(self.dump_flows(switch), cookie)

    # -- traffic on hosts --------------------------------------------------------------------
    def popen(self, host: str, args: list[str], **kwargs: Any) -> subprocess.Popen:
        """Start a command on a Mininet host; ``stop`` ends it if it still runs.

        Its output goes to a temporary file (``process.output()`` reads it once it ended),
        never to a pipe nobody reads: a chatty command (``ping -i 0.01``) would block on a
        full pipe and stop sending.
        """
        output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed with the process)
        kwargs = {"stdout": output, "stderr": subprocess.STDOUT, "text": True, **kwargs}
        process = self.net.get(host).popen(list(args), **kwargs)
        process.output = partial(_read_output, process, output)
        process.output_file = output
        self.processes.append(process)
        self._write_record()
        return process

    def forget(self, process: subprocess.Popen) -> None:
        """Drop a finished ``popen`` process (and its output file) from what ``stop`` ends:
        callers that start commands over and over (the Mininet environment) do not pile up
        open files."""
        if process.poll() is None:
            raise ValueError(f"process {process.pid} still runs")
        self.processes = [p for p in self.processes if p is not process]
        process.output_file.close()  # type: ignore[attr-defined]  # attached by popen()

    def host_ip(self, host: str) -> str:
        return self.net.get(host).IP()

    def pin_arp(self, a: str, b: str) -> None:
        """Static neighbour entries on hosts ``a`` and ``b`` for each other: while the
        controller (which answers ARP) is stopped, a stale entry would stop a host sending
        for reasons that have nothing to do with forwarding."""
        for host, peer in ((a, b), (b, a)):
            node, other = self.net.get(host), self.net.get(peer)
            node.cmd(f"ip neigh replace {other.IP()} lladdr {other.MAC()} "
                     f"dev {node.defaultIntf()} nud permanent")

    def ping(self, src: str, dst: str, count: int, interval_s: float = 0.01,
             wait_s: float = 1.0) -> PingRun:
        """Start ``ping`` from host ``src`` to host ``dst``: ``count`` echo requests, one every
        ``interval_s``; ``.result()`` waits for it and says which were answered."""
        args = ["ping", "-n", "-D", "-c", str(count), "-i", f"{interval_s:g}",
                "-W", f"{wait_s:g}", self.host_ip(dst)]
        return PingRun(self.popen(src, args), count, interval_s)

    def iperf3(self, client: str, server: str, seconds: float = 3.0, *,
               udp_mbps: float | None = None, length: int | None = None, port: int = 5201,
               omit_s: int = 0, start_only: bool = False) -> Iperf3Run:
        """An iperf3 test from ``client`` to ``server`` (TCP, or UDP at ``udp_mbps``).

        Starts a one-off server on ``server`` and the client once the server listens; the
        returned run's ``.result()`` waits and gives iperf3's JSON (the client's, which
        includes the receiver's totals).
        """
        server_run = self.popen(server, ["iperf3", "-s", "-1", "-p", str(port), "-J"])
        host = self.net.get(server)
        deadline = time.monotonic() + 10
        while f":{port}" not in host.cmd(f"ss -ltnH 'sport = :{port}'"):
            if time.monotonic() > deadline or server_run.poll() is not None:
                raise TestbedError(f"iperf3 server on {server} did not start")
            time.sleep(0.05)
        args = ["iperf3", "-c", self.host_ip(server), "-p", str(port), "-J",
                "-t", f"{seconds:g}"]
        if omit_s:
            args += ["-O", str(omit_s)]
        if udp_mbps is not None:
            args += ["-u", "-b", f"{udp_mbps:g}M"]
        if length is not None:
            args += ["-l", str(length)]
        return Iperf3Run(self.popen(client, args), server_run, seconds + omit_s)


def _read_output(process: subprocess.Popen, output, timeout_s: float | None = None) -> str:
    """Wait for ``process`` and return what it printed."""
    process.wait(timeout=timeout_s)
    output.seek(0)
    return output.read()


def _name_hint(process: subprocess.Popen) -> str:
    args = process.args if isinstance(process.args, list) else str(process.args).split()
    # mnexec -da PID command...: the command is what the pid runs after exec
    return next((str(arg) for arg in args if "mnexec" not in str(arg)
                 and not str(arg).startswith("-") and not str(arg).isdigit()), "")


# -- reading back what the switches hold --------------------------------------------------
@dataclass(frozen=True)
class GroupEntry:
    """One group as ``ovs-ofctl dump-groups`` shows it; buckets are (label, weight, port).

    The label is the one a bucket pushes or sets; the port is the one it outputs on, or for
    a bucket that continues in another group (local repair), that group's first bucket's.
    ``type`` is "select" or "ff" (fast failover); ``watched`` the bucket's watch port."""

    group_id: int
    type: str
    buckets: tuple[tuple[int | None, int, int | None], ...]
    watched: tuple[int | None, ...] = ()
    chained: tuple[int | None, ...] = ()
    """The group each bucket continues in (None: none)."""

    def weights(self) -> dict[int | None, int]:
        """MPLS label -> bucket weight."""
        return {label: weight for label, weight, _ in self.buckets}


_GROUP = re.compile(r"group_id=(\d+),type=(\w+)")
_WEIGHT = re.compile(r"weight:(\d+)")
_LABEL = re.compile(r"set_field:(\d+)->mpls_label")
_OUTPUT = re.compile(r"output:(\d+)")
_WATCH = re.compile(r"watch_port:(\d+)")
_CHAINED = re.compile(r"[,=]group:(\d+)")


def parse_groups(text: str) -> dict[int, GroupEntry]:
    groups = {}
    for line in text.splitlines():
        head = _GROUP.search(line)
        if head is None:
            continue
        buckets, watched, chained = [], [], []
        for part in line.split("bucket=")[1:]:
            found = [pattern.search(part) for pattern in (_LABEL, _WEIGHT, _OUTPUT, _WATCH,
                                                          _CHAINED)]
            label, weight, output, watch, group = (
                int(match.group(1)) if match else None for match in found)
            if output is None and "IN_PORT" in part:  # back out of the port it came in by
                output = watch
            buckets.append((label, 1 if weight is None else weight, output))
            watched.append(watch)
            chained.append(group)
        group_id = int(head.group(1))
        groups[group_id] = GroupEntry(group_id, head.group(2), tuple(buckets), tuple(watched),
                                      tuple(chained))
    return {gid: _resolve_chained(entry, groups) for gid, entry in groups.items()}


def _resolve_chained(entry: GroupEntry, groups: dict[int, GroupEntry]) -> GroupEntry:
    """A bucket that continues in another group leaves by that group's first bucket's port."""
    buckets = []
    for (label, weight, port), group in zip(entry.buckets, entry.chained):
        if port is None and group in groups and groups[group].buckets:
            port = groups[group].buckets[0][2]
        buckets.append((label, weight, port))
    return replace(entry, buckets=tuple(buckets))


_STATS = re.compile(r"\b(duration|n_packets|n_bytes|idle_age|hard_age|reset_counts)=[^ ,]*,? ?")


def parse_flows(text: str, cookie: int) -> dict[tuple, str]:
    flows: dict[tuple, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("cookie="):
            continue
        fields, _, actions = line.partition(" actions=")
        fields = _STATS.sub("", fields)
        parts = dict(part.split("=", 1) for part in fields.replace(", ", ",").split(",")
                     if part.startswith(("cookie=", "table=", "priority=")))
        match = ",".join(part for part in fields.replace(", ", ",").split(",")
                         if not part.startswith(("cookie=", "table=", "priority=")))
        if int(parts.get("cookie", "0"), 16) != cookie:
            flows["other", line] = actions
            continue
        key = (int(parts.get("table", 0)), int(parts.get("priority", 32768)), match)
        if key in flows:  # the switch holds two rules with one key: impossible in OpenFlow
            flows["duplicate", line] = actions
        flows[key] = actions
    return flows


# -- traffic results ------------------------------------------------------------------------
@dataclass
class PingResult:
    count: int
    interval_s: float
    replies: dict[int, float]  # icmp_seq -> time the reply was printed (s, wall clock)
    output: str

    @property
    def received(self) -> int:
        return len(self.replies)

    @property
    def lost(self) -> list[int]:
        return [seq for seq in range(1, self.count + 1) if seq not in self.replies]

    @property
    def longest_loss_run(self) -> int:
        """The most consecutive echo requests without a reply."""
        longest = run = 0
        for seq in range(1, self.count + 1):
            run = run + 1 if seq not in self.replies else 0
            longest = max(longest, run)
        return longest

    @property
    def outage_ms(self) -> float:
        """Lost echo requests times the interval."""
        return len(self.lost) * self.interval_s * 1000

    @property
    def longest_gap_ms(self) -> float:
        """Longest time between two consecutive replies, minus one interval (0: none lost)."""
        times = [self.replies[seq] for seq in sorted(self.replies)]
        gaps = [b - a for a, b in pairwise(times)]
        return max(0.0, (max(gaps, default=0.0) - self.interval_s) * 1000)


_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)", re.MULTILINE)


_TRANSMITTED = re.compile(r"^(\d+) packets transmitted", re.MULTILINE)


class PingRun:
    def __init__(self, process: subprocess.Popen, count: int, interval_s: float) -> None:
        self.process, self.count, self.interval_s = process, count, interval_s
        self.stopped = False

    def stop(self) -> PingResult:
        """End ping early (SIGINT, as ^C) and return what it saw. Echo requests of the last
        half second may still have been in flight: they are not counted."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.stopped = True
        return self.result()

    def result(self, timeout_s: float | None = None) -> PingResult:
        timeout_s = timeout_s if timeout_s is not None else self.count * self.interval_s * 3 + 30
        out = self.process.output(timeout_s)  # type: ignore[attr-defined]  # attached by popen()
        replies = {int(seq): float(at) for at, seq in _REPLY.findall(out)}
        count = self.count
        if self.stopped and (sent := _TRANSMITTED.search(out)):
            count = max(0, int(sent.group(1)) - int(0.5 / self.interval_s))
            replies = {seq: at for seq, at in replies.items() if seq <= count}
        return PingResult(count, self.interval_s, replies, out)


class Iperf3Run:
    def __init__(self, client: subprocess.Popen, server: subprocess.Popen,
                 seconds: float) -> None:
        self.client, self.server, self.seconds = client, server, seconds

    def result(self, timeout_s: float | None = None) -> dict[str, Any]:
        timeout_s = timeout_s if timeout_s is not None else self.seconds * 3 + 30
        out = self.client.output(timeout_s)  # type: ignore[attr-defined]  # attached by popen()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        try:
            document = json.loads(out)
        except json.JSONDecodeError as error:
            raise TestbedError(f"iperf3 gave no JSON ({error}): {out[-1000:]}") from None
        if "error" in document:
            raise TestbedError(f"iperf3: {document['error']}")
        return document
