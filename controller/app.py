"""The os-ken application: a thin shell that turns OpenFlow events into calls on plain objects.

Each handler translates one os-ken event into a call on ``ControlPlane`` (``controller.plane``)
with the time, and sends the ``(dpid, message)`` pairs that come back; the REST resources are
``controller.resources``. What is left here is what needs os-ken or eventlet: the datapaths,
the timers, the REST server, model loading off the hub, and the adapter-process launch.

Run it with ``ryute controller`` (see ``controller.launcher``) or, equivalently, with
``osken-manager controller/app.py`` (configuration then comes from ``$RYUTE_CONFIG``).
"""
from __future__ import annotations

import functools
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import eventlet
import eventlet.hubs
from eventlet import tpool
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from api.endpoints import OPENAPI
from controller import openflow
from controller.auth import new_api_token
from controller.config import ControllerConfig
from controller.decisions import Outcome
from controller.openflow import Send
from controller.plane import ControlPlane, Now, read_agent
from controller.resources import Resources
from controller.rest import RestApi, Route, serve
from controller.tls import check_rest_tls, check_tls, green_tls, rest_tls_context
from sim.runs import run_dir

LOG = logging.getLogger("ryute.controller")
OFP = ofproto_v1_3
MODEL_LOAD_DEADLINE_S = 60.0
"""A model file takes longer than this to load (read, checked, built): refused."""
REST_MAX_CONNECTIONS = 256
"""REST connections served at once; more wait in the listen backlog."""
TOPOLOGY_SETTLE_S = 0.05
"""Several links discovered in one LLDP round make one topology update, not one each."""


def guarded(handler):
    """An event handler that raises must not stop the app's event loop: log and go on."""
    @functools.wraps(handler)
    def wrapper(self, ev):
        try:
            handler(self, ev)
        except Exception:
            LOG.exception("%s failed on %s", handler.__name__, type(ev).__name__)
    return wrapper


class RyuteApp(app_manager.OSKenApp):
    OFP_VERSIONS = [OFP.OFP_VERSION]

    def __init__(self, *args: Any, ryute_config: ControllerConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if ryute_config is not None:  # ryute controller: one config for os-ken and us
            self._set_up(ryute_config)
            return
        try:  # osken-manager: $RYUTE_CONFIG, and a bad one is one line, not os-ken's traceback
            self._set_up(listen_where_configured(ControllerConfig.load()))
        except ValueError as error:
            raise SystemExit(f"ryute: error: {error}") from None

    def _set_up(self, config: ControllerConfig) -> None:
        self.config = config
        self.plane = ControlPlane(config, runner=green_runner, reader=self._read_agent)
        self.datapaths: dict[int, Any] = {}
        self.topology_change_pending = False
        self.api_token = config.api_token
        self.resources = Resources(self.plane, token=lambda: self.api_token,
                                   decide=lambda: self._decide_and_install())
        self.plane.load_configured_model()

    def _read_agent(self, spec: str, path_set) -> Any:
        return off_hub(read_agent, spec, path_set, self.config.topology or "",
                       self.config.trusted_keys, deadline_s=MODEL_LOAD_DEADLINE_S,
                       what=f"model {spec}")

    def _send(self, sends: list[Send]) -> None:
        for dpid, message in sends:
            datapath = self.datapaths.get(dpid)
            if datapath is not None:
                message.datapath = datapath
                datapath.send_msg(message)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self):
        thread = super().start()
        self.own_threads = [hub.spawn(self._every, self.config.lldp_interval_s, self._lldp_round),
                            hub.spawn(self._every, self.config.poll_interval_s, self._poll_round)]
        signal.signal(signal.SIGHUP, lambda *_: hub.spawn(self._reload_model))
        self._handle_stop_signals()
        if self.config.rest_port:
            if self.api_token is None and not _is_loopback(self.config.rest_host):
                self.api_token = new_api_token()
                print(f"ryute: REST API on {self.config.rest_host}: changes need "
                      f"'Authorization: Bearer {self.api_token}'", file=sys.stderr, flush=True)
            sock = hub.listen((self.config.rest_host, self.config.rest_port))
            tls = rest_tls_context(self.config)
            if tls is not None:  # HTTPS only: the handshake, in each connection's green thread
                sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            self.own_threads.append(hub.spawn(serve, sock, self.rest_api(),
                                          max_connections=REST_MAX_CONNECTIONS,
                                          timeout_s=self.config.rest_timeout_s))
            LOG.info("REST API on %s://%s:%d%s", "https" if tls else "http",
                     self.config.rest_host, self.config.rest_port, OPENAPI.path)
        LOG.info("ryute controller started (cookie %#x, topology %s)",
                 self.config.cookie, self.config.topology or "from discovery")
        LOG.info("OpenFlow listening on %s:%d%s", self.config.ofp_host, self.config.ofp_port,
                 (" (TLS, switch certificates checked)" if self.config.ofp_tls_ca else " (TLS)")
                 if self.config.ofp_tls_cert else "")
        if self.config.adapt:
            self._start_adaptation()
        return thread

    def rest_routes(self) -> list[Route]:
        """The route table; a module that adds resources (a dashboard) adds its routes here."""
        return self.resources.routes()

    def rest_api(self) -> RestApi:
        """The WSGI application of the route table, with the app's token."""
        return RestApi(self.rest_routes(), token=lambda: self.api_token,
                       loopback_only=_is_loopback(self.config.rest_host))

    def _start_adaptation(self) -> None:
        """The adaptation loop in its own process: training never delays a decision."""
        model_spec, topology = self.plane.model_spec, self.config.topology
        if not (model_spec and topology and self.config.rest_port
                and self.plane.view.state is not None):
            LOG.error("--adapt needs a model, a topology and the REST API; not started")
            return
        host = "127.0.0.1" if self.config.rest_host in ("0.0.0.0", "::") else self.config.rest_host
        out_dir = run_dir("adapt", str(os.getpid()))
        if self.api_token is None:  # the adapter publishes through the authenticated API
            self.api_token = new_api_token()
            token_file = write_private(out_dir / "api-token", self.api_token + "\n")
            LOG.warning("--adapt: REST changes need the API token from now on (the adapter "
                        "publishes its models through the API); it is in %s, e.g. "
                        "'ryute mode active --token $(cat %s)' or RYUTE_API_TOKEN=...",
                        token_file, token_file)
        command = [sys.executable, "-m", "agents.adapt_service",
                   "--url", f"http://{host}:{self.config.rest_port}",
                   "--topology", topology, "--model", model_spec,
                   "--out-dir", str(out_dir), "--interval", str(self.config.poll_interval_s)]
        # Its own session: a Ctrl-C in the terminal reaches the controller only, which then
        # stops the adapter; and the adapter dies with the controller, even a killed one.
        self.adapter_process = subprocess.Popen(
            command, env={**os.environ, "RYUTE_API_TOKEN": self.api_token},
            start_new_session=True, preexec_fn=functools.partial(die_with_parent, os.getpid()))
        LOG.info("adaptation started (pid %d), models in %s", self.adapter_process.pid, out_dir)

    def _handle_stop_signals(self) -> None:
        """SIGINT (Ctrl-C) and SIGTERM stop the controller cleanly, under ``ryute controller``
        and ``osken-manager`` alike (a SIGINT ignored at start, as in a background job, stays
        ignored)."""
        self.stop_reason: str | None = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, self._on_stop_signal)

    def _on_stop_signal(self, signum: int, _frame: Any) -> None:
        """Unwind to the launcher's ``joinall``, which closes the apps (and so :meth:`stop`).

        Raised in the hub (idle in its poll, the usual case), eventlet passes it on to the
        main green thread; raised inside a green thread, os-ken's spawn wrapper would swallow
        it, so the hub raises it at its next turn instead."""
        name = signal.Signals(signum).name
        self.stop_reason = self.stop_reason or name
        current, main_hub = eventlet.getcurrent(), eventlet.hubs.get_hub()
        if current is main_hub.greenlet or current.parent is None:
            raise StopSignal(name)
        main_hub.schedule_call_global(0, _raise, StopSignal(name))

    def stop(self) -> None:
        LOG.info("ryute controller stopping (%s)", getattr(self, "stop_reason", None) or "closed")
        for thread in getattr(self, "own_threads", []):
            hub.kill(thread)  # the REST server closes its idle connections on the way out
        self._stop_adapter()
        if self.plane.recorder is not None:
            self.plane.recorder.flush()  # the intervals since the last write
        super().stop()
        LOG.info("ryute controller stopped")

    def _stop_adapter(self, grace_s: float = 3.0) -> None:
        process = getattr(self, "adapter_process", None)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _reload_model(self) -> None:
        spec = self.plane.model_spec
        if not spec:
            LOG.warning("SIGHUP: no model file configured, nothing to reload")
            return
        try:
            self.plane.load_model(spec)
        except (ValueError, OSError) as error:
            LOG.error("SIGHUP: model %s refused, the current one keeps running: %s", spec, error)

    def _every(self, interval_s: float, function) -> None:
        while True:
            try:
                function()
            except Exception:
                LOG.exception("%s failed", function.__name__)
            hub.sleep(interval_s)

    # -- timers (each step sent before the next: a decision may yield, see controller.plane)
    def _lldp_round(self) -> None:
        plane = self.plane
        self._send(plane.lldp_probes())
        self._send(plane.expire_links())
        self._send(plane.finish_reconciliations(Now.read()))
        self._send(plane.fence_timeouts(Now.read()))

    def _poll_round(self) -> None:
        self._send(self.plane.poll_round(Now.read()))

    def _decide_and_install(self) -> None:
        self._send(self.plane.decide(Now.read()))

    def _schedule_topology_change(self) -> None:
        """Take several discoveries of one LLDP round in one update, not one update each."""
        if not self.topology_change_pending:
            self.topology_change_pending = True
            hub.spawn_after(TOPOLOGY_SETTLE_S, self._pending_topology_change)

    def _pending_topology_change(self) -> None:
        self.topology_change_pending = False
        try:
            self._send(self.plane.topology_changed())
            self._send(self.plane.finish_reconciliations(Now.read()))
        except Exception:
            LOG.exception("topology update failed")

    # -- switches ----------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def on_state_change(self, ev) -> None:
        datapath, dpid = ev.datapath, ev.datapath.id
        if dpid is None:
            return
        if ev.state == MAIN_DISPATCHER:
            self.datapaths[dpid] = datapath
            self._send(self.plane.switch_connected(dpid, Now.read()))
        elif self.datapaths.get(dpid) is datapath:
            del self.datapaths[dpid]
            self._send(self.plane.switch_disconnected(dpid))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def on_flow_stats(self, ev) -> None:
        msg = ev.msg
        self._send(self.plane.flow_stats(
            msg.datapath.id, msg.xid, [openflow.flow_entry(stats) for stats in msg.body],
            openflow.more_follows(msg), Now.read()))

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def on_group_desc(self, ev) -> None:
        msg = ev.msg
        self._send(self.plane.group_desc(msg.datapath.id, msg.xid,
                                         [group.group_id for group in msg.body],
                                         openflow.more_follows(msg), Now.read()))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def on_port_desc(self, ev) -> None:
        self.plane.port_desc(ev.msg.datapath.id, [openflow.port_of(port) for port in ev.msg.body])

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def on_port_status(self, ev) -> None:
        msg = ev.msg
        self._send(self.plane.port_status(msg.datapath.id, openflow.port_of(msg.desc),
                                          deleted=msg.reason == OFP.OFPPR_DELETE))

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    @guarded
    def on_port_stats(self, ev) -> None:
        msg = ev.msg
        self._send(self.plane.port_stats(msg.datapath.id, openflow.port_samples(msg.body),
                                         openflow.more_follows(msg), Now.read()))

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def on_barrier(self, ev) -> None:
        self._send(self.plane.barrier_reply(ev.msg.datapath.id, ev.msg.xid))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def on_error(self, ev) -> None:
        msg = ev.msg
        LOG.error("switch %s rejected a message: type %d code %d",
                  self.plane.name(msg.datapath.id), msg.type, msg.code)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def on_packet_in(self, ev) -> None:
        msg = ev.msg
        dpid, in_port, data = msg.datapath.id, msg.match.get("in_port", 0), bytes(msg.data)
        if openflow.is_lldp(data):
            if self.plane.lldp_in(dpid, in_port, data):
                self._schedule_topology_change()
            return
        self._send(self.plane.packet_in(dpid, in_port, data, Now.read()))


def listen_where_configured(config: ControllerConfig) -> ControllerConfig:
    """One OpenFlow address for os-ken's listener and for us, under ``osken-manager``.

    ``ryute controller`` hands the config's address to os-ken itself. Under ``osken-manager`` the
    config comes from ``$RYUTE_CONFIG``, and os-ken would listen on its own defaults (6653 and
    6633) instead: its flags ``--ofp-listen-host``/``--ofp-tcp-listen-port`` win when given,
    as options win over the file with ``ryute controller``; otherwise the file's address is
    what os-ken listens on. os-ken reads these when its OpenFlow handler starts, which is
    after every app is built."""
    from os_ken import cfg
    from os_ken.controller.controller import DEFAULT_OFP_HOST

    conf = cfg.CONF
    if conf.ofp_tcp_listen_port is not None:
        config = config.replace(ofp_port=conf.ofp_tcp_listen_port)
    else:
        conf.set_override("ofp_tcp_listen_port", config.ofp_port)
    if conf.ofp_listen_host != DEFAULT_OFP_HOST:
        config = config.replace(ofp_host=conf.ofp_listen_host)
    else:
        conf.set_override("ofp_listen_host", config.ofp_host)
    if conf.ctl_cert is None and config.ofp_tls_cert:  # TLS from the file, on the same port
        check_tls(config)
        for name, value in (("ctl_cert", config.ofp_tls_cert), ("ctl_privkey", config.ofp_tls_key),
                            ("ca_certs", config.ofp_tls_ca),
                            ("ofp_ssl_listen_port", config.ofp_port)):
            conf.set_override(name, value)
    if conf.ctl_cert is not None:  # from the file or from os-ken's own flags
        green_tls()
    check_rest_tls(config)
    return config


def write_private(path: Path, text: str) -> Path:
    """``text`` in a new file only its owner can read (a secret: the API token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return path


class StopSignal(KeyboardInterrupt):
    """SIGINT or SIGTERM: stop the controller (``signal`` is the name, e.g. "SIGTERM")."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.signal = name


def _raise(error: BaseException) -> None:
    raise error


def die_with_parent(parent: int) -> None:
    """In a child process before exec: the kernel sends it SIGTERM when the process that
    started it dies, even by SIGKILL (Linux ``PR_SET_PDEATHSIG``; elsewhere the adapter's own
    check of its parent pid remains)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def off_hub(function, *args: Any, deadline_s: float, what: str) -> Any:
    """``function(*args)`` in a worker thread, waited for at most ``deadline_s``, when running
    on os-ken's eventlet hub: reading a model file must not stall OpenFlow and REST, which the
    hub also serves. A late call finishes in the background and its result is dropped. Off
    the hub (the app in a test, without eventlet's patches) it is a plain call. os-ken patches
    threads only (``hub.patch(thread=True)``), so that is what tells the hub is there."""
    if not eventlet.patcher.is_monkey_patched("thread"):
        return function(*args)
    tpool.setup()
    try:
        with eventlet.Timeout(deadline_s):
            return tpool.execute(function, *args)
    except eventlet.Timeout:
        raise ValueError(f"{what}: not done within {deadline_s:g} s, given up") from None


def green_runner(call, budget_s: float) -> Outcome:
    """Run the agent in a real thread (torch releases no green thread) and wait at most the
    budget; a late call finishes in the background and its result is dropped.

    eventlet starts its thread pool on first use, and that set-up yields to the hub: a Timeout
    firing there leaves the pool marked as started with no thread to take a job, and the call
    (which clears the loop's busy flag) would never run, so the agent would be "still running"
    for ever. Hence ``tpool.setup()`` (a no-op once done) outside the timeout, here and in
    :func:`off_hub`."""
    started = time.perf_counter()
    tpool.setup()
    try:
        with eventlet.Timeout(budget_s):
            decision = tpool.execute(call)
        return Outcome(decision, None, (time.perf_counter() - started) * 1000)
    except eventlet.Timeout:
        return Outcome(None, "timeout", (time.perf_counter() - started) * 1000)
    except Exception as error:
        return Outcome(None, f"{type(error).__name__}: {error}",
                       (time.perf_counter() - started) * 1000)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
