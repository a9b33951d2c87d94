"""The os-ken application: a thin shell that turns OpenFlow events into calls on plain objects.

``LinkDiscovery`` and ``NetworkView`` hold what is known, ``controller.pipeline`` says what every
switch should hold, ``controller.openflow`` makes the messages; this class only moves events in
and messages out, and keeps a record of what it installed so that it sends differences only.

Run it with ``ryute controller`` (see ``controller.launcher``) or, equivalently, with
``osken-manager controller/app.py`` (configuration then comes from ``$RYUTE_CONFIG``).
"""
from __future__ import annotations

import functools
import ipaddress
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http import HTTPStatus
from pathlib import Path
from typing import Any

import eventlet
import eventlet.wsgi
import networkx as nx
import numpy as np
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
from os_ken.lib.packet import arp, ether_types, ethernet, ipv4, packet
from os_ken.ofproto import ofproto_v1_3

from agents.baselines import ShortestPathPolicy, fallback_policy
from controller import faults, openflow, pipeline
from controller.auth import new_api_token
from controller.config import ControllerConfig
from controller.decisions import ROLLOUT_FIELDS, DecisionLog, DecisionLoop, Mode, Outcome, Rollout
from controller.discovery import Link, LinkDiscovery
from controller.metrics import Metrics
from controller.network import NetworkView
from controller.rest import HttpError, Request, Response, RestApi, require_token
from sim.decision import Decision
from topologies.catalog import load_topology

LOG = logging.getLogger("ryute.controller")
OFP = ofproto_v1_3
PROBE_MAC = "02:72:79:75:74:65"
"""Source MAC of the controller's own ARP probes (locally administered)."""
PROBE_INTERVAL_S = 1.0
MODEL_LOAD_DEADLINE_S = 60.0
"""A model file takes longer than this to load (read, checked, built): refused."""
REST_MAX_CONNECTIONS = 256
"""REST connections served at once; more wait in the listen backlog."""


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
        self.config = config = ryute_config or ControllerConfig.load()
        self.expected: nx.DiGraph | None = (
            load_topology(config.topology) if config.topology else None)
        self.discovery = LinkDiscovery(
            max(2, math.ceil(config.link_timeout_s / config.lldp_interval_s)))
        self.view = NetworkView(
            self.expected, self.discovery, paths_k=config.paths_k,
            path_method=config.path_method, capacity_scale=config.capacity_scale,
            default_capacity_mbps=config.default_capacity_mbps)
        self.datapaths: dict[int, Any] = {}
        self.ready: set[int] = set()  # switches whose state has been reconciled
        self.installed_flows: dict[int, dict[tuple, pipeline.Flow | None]] = {}
        self.installed_groups: dict[int, dict[int, pipeline.Group | None]] = {}
        self.reconciling: dict[int, dict[str, Any]] = {}
        self.decision: Decision | None = None
        self.pending_arp: dict[str, set[tuple[int, int, str, str]]] = defaultdict(set)
        self.last_probe: dict[str, float] = {}
        self.fence: dict[tuple[int, int], float] = {}  # outstanding barriers (dpid, xid)
        self.after_fence: list = []
        self.started_at = time.time()
        self.awaiting: set[tuple[int, str]] = set()  # statistics replies of this round
        self.topology_change_pending = False
        self.decision_lock = threading.Lock()  # green under os-ken's eventlet hub
        self.label_cache: tuple[Any, dict] = (None, {})
        self.group_cache: tuple[Any, Any, dict] = (None, None, {})
        self.last_decision_at: float | None = None
        self.metrics = Metrics()
        self.api_token = config.api_token
        self.loop = DecisionLoop(
            self._fallback_policy(), poll_interval_s=config.poll_interval_s,
            mode=Mode(config.mode), runner=green_runner,
            health=config.health,
            log=DecisionLog(path=config.decision_log))
        try:
            self.loop.set_mode(Mode(config.mode), self._rollout(config.rollout_fields()))
        except ValueError as error:  # e.g. a canary switch the topology does not have
            LOG.error("rollout refused, starting in shadow mode: %s", error)
            self.loop.set_mode(Mode.SHADOW)
        self.model_spec = config.model
        self.model_resolved: str | None = None  # for --model default: which file, and why
        if config.model:
            try:
                self.load_model(config.model)
            except (ValueError, OSError) as error:
                LOG.error("agent not loaded, the fallback decides alone: %s", error)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self):
        thread = super().start()
        self.threads.append(hub.spawn(self._every, self.config.lldp_interval_s, self._lldp_round))
        self.threads.append(hub.spawn(self._every, self.config.poll_interval_s, self._poll_round))
        signal.signal(signal.SIGHUP, lambda *_: hub.spawn(self._reload_model))
        if self.config.rest_port:
            if self.api_token is None and not _is_loopback(self.config.rest_host):
                self.api_token = new_api_token()
                print(f"ryute: REST API on {self.config.rest_host}: changes need "
                      f"'Authorization: Bearer {self.api_token}'", file=sys.stderr, flush=True)
            api = RestApi(self.rest_routes(), loopback_only=_is_loopback(self.config.rest_host))
            sock = hub.listen((self.config.rest_host, self.config.rest_port))
            # A bounded pool and a socket timeout: idle or slow-loris connections are closed
            # instead of holding a green thread each until the API stops answering.
            self.threads.append(hub.spawn(
                eventlet.wsgi.server, sock, api, log=hub.LoggingWrapper(),
                max_size=REST_MAX_CONNECTIONS, socket_timeout=self.config.rest_timeout_s))
            LOG.info("REST API on http://%s:%d/te/v1/status",
                     self.config.rest_host, self.config.rest_port)
        LOG.info("ryute controller started (cookie %#x, topology %s)",
                 self.config.cookie, self.config.topology or "from discovery")
        if self.config.adapt:
            self._start_adaptation()
        return thread

    def _start_adaptation(self) -> None:
        """The adaptation loop in its own process: training never delays a decision."""
        if not (self.model_spec and self.config.rest_port and self.view.state is not None):
            LOG.error("--adapt needs a model, a topology and the REST API; not started")
            return
        if self.api_token is None:  # the adapter publishes through the authenticated API
            self.api_token = new_api_token()
            print(f"ryute: REST changes need 'Authorization: Bearer {self.api_token}'",
                  file=sys.stderr, flush=True)
        host = "127.0.0.1" if self.config.rest_host in ("0.0.0.0", "::") else self.config.rest_host
        out_dir = Path("runs") / "adapt" / str(os.getpid())
        command = [sys.executable, "-m", "agents.adapt_service",
                   "--url", f"http://{host}:{self.config.rest_port}",
                   "--topology", self.config.topology, "--model", self.model_spec,
                   "--out-dir", str(out_dir), "--interval", str(self.config.poll_interval_s)]
        self.adapter_process = subprocess.Popen(
            command, env={**os.environ, "RYUTE_API_TOKEN": self.api_token})
        LOG.info("adaptation started (pid %d), models in %s", self.adapter_process.pid, out_dir)

    def stop(self) -> None:
        process = getattr(self, "adapter_process", None)
        if process is not None and process.poll() is None:
            process.terminate()
        super().stop()

    def _reload_model(self) -> None:
        if not self.model_spec:
            LOG.warning("SIGHUP: no model file configured, nothing to reload")
            return
        try:
            self.load_model(self.model_spec)
        except (ValueError, OSError) as error:
            LOG.error("SIGHUP: model %s refused, the current one keeps running: %s",
                      self.model_spec, error)

    def _every(self, interval_s: float, function) -> None:
        while True:
            try:
                function()
            except Exception:
                LOG.exception("%s failed", function.__name__)
            hub.sleep(interval_s)

    def _lldp_round(self) -> None:
        for dpid, port_no, frame in self.discovery.probes():
            self._send(dpid, [openflow.packet_out(port_no, frame)])
        expired = self.discovery.expire()
        for link in expired:
            LOG.warning("link %s timed out", self._link_name(link))
        if expired:
            self._topology_changed()
        self._finish_reconciliations()
        now = time.monotonic()  # a switch that never answers a barrier must not hold ARP forever
        self._lower_fence([key for key, since in self.fence.items() if now - since > 2.0])

    def _poll_round(self) -> None:
        """Ask every switch for its counters; the interval closes when all have answered."""
        if self.awaiting:  # a switch did not answer in a whole interval: close without it
            self._close_interval()
        self.awaiting = {(dpid, kind) for dpid in self.ready for kind in ("ports", "flows")}
        for dpid in sorted(self.ready):  # a copy: handlers may change the set
            self._send(dpid, [openflow.port_stats_request(),
                              openflow.own_flows_request(self.config.cookie,
                                                         pipeline.TABLE_INGRESS)])

    def _statistics_in(self, dpid: int, kind: str, last_part: bool) -> None:
        if not last_part or (dpid, kind) not in self.awaiting:
            return
        self.awaiting.discard((dpid, kind))
        if not self.awaiting:
            self._close_interval()

    def _close_interval(self) -> None:
        """Statistics in: loads and OD matrix into the state, then decide and install."""
        self.awaiting = set()
        state = self.view.state
        if state is None:
            return
        self.view.record_interval(time.time())
        self.loop.log.measured(state.mlu)  # of the interval the last decision ran in
        self.metrics.mlu.set(state.mlu)
        for (u, v), value in zip(state.path_set.edges, state.utilization):
            self.metrics.link_utilization.labels(str(u), str(v)).set(float(value))
        self._decide_and_install()

    def _send(self, dpid: int, messages: list) -> None:
        datapath = self.datapaths.get(dpid)
        if datapath is None:
            return
        for message in messages:
            message.datapath = datapath
            datapath.send_msg(message)

    # -- policies ----------------------------------------------------------------------------
    def _fallback_policy(self) -> ShortestPathPolicy | None:
        """Shortest paths under inverse-capacity weights, ECMP ties, live links only."""
        state = self.view.state
        if state is None:
            return None
        return fallback_policy(state.path_set)

    def load_model(self, spec: str) -> str:
        """Load (or hot-swap) the agent; on any error the current agent keeps running."""
        state = self.view.state
        if state is None:
            raise ValueError("no topology yet: a model needs the network it was trained for")
        agent = off_hub(_read_agent, spec, state.path_set, self.config.topology or "",
                        self.config.trusted_keys, deadline_s=MODEL_LOAD_DEADLINE_S,
                        what=f"model {spec}")
        model_id = agent.metadata.get("id", str(spec))
        self.model_resolved = agent.metadata.get("resolved")  # which default, and why
        agent = faults.wrap_if_enabled(agent)
        self.loop.set_agent(agent, model_id)
        self.model_spec = spec
        LOG.info("model %s loaded (mode %s)", model_id, self.loop.mode.value)
        return model_id

    def _path_set_changed(self) -> None:
        """A new topology version: new fallback; the agent only if its model fits the new paths."""
        self.loop.fallback = self._fallback_policy()
        if self.loop.agent is not None:
            self.loop.set_agent(None, None)
            try:
                self.load_model(self.model_spec)
            except (ValueError, OSError) as error:
                LOG.error("agent dropped after the topology changed: %s", error)

    # -- decisions and installation ---------------------------------------------------------
    def _decide_and_install(self) -> None:
        """One interval of the decision loop: fallback and agent decide; install the winner.

        One at a time: a decision asked for by a mode change must not overlap an interval's
        decision still waiting for the agent (the agent would look busy, hence unhealthy).
        """
        with self.decision_lock:
            self._decide_and_install_now()

    def _decide_and_install_now(self) -> None:
        state = self.view.state
        if state is None or self.loop.fallback is None:
            return
        started = time.perf_counter()
        decision, record = self.loop.decide(state, time.time())
        self._install(decision)
        self.last_decision_at = record.time
        metrics = self.metrics
        metrics.decision_latency.observe(time.perf_counter() - started)
        metrics.decisions.labels(record.source).inc()
        for policy, value in record.predicted_mlu.items():
            if value is not None:
                metrics.predicted_mlu.labels(policy).set(value)
        if record.decision_ms["agent"] is not None:
            metrics.agent_latency.observe(record.decision_ms["agent"] / 1000)
        metrics.agent_trusted.set(1.0 if record.trusted else 0.0)
        if record.transition:
            metrics.health_transitions.labels(record.transition).inc()

    def _install(self, decision: Decision) -> None:
        """New weights: one group modification per changed OD pair, nothing else."""
        self.decision = decision
        groups = self._desired_groups()
        for dpid in sorted(self.ready):  # a copy: handlers may change the set
            self._sync_groups(dpid, groups.get(dpid, {}))

    def _topology_changed(self) -> None:
        """Links changed: move weight off dead paths at once, before any new decision."""
        ports_before = dict(self.view.link_ports)
        rebuilt = self.view.links_changed()
        if rebuilt:
            self._path_set_changed()
        state, fallback = self.view.state, self.loop.fallback
        if state is not None and fallback is not None:
            down = self.view.down_links()
            if rebuilt or self.decision is None or self.loop.source == "fallback":
                self._install(fallback.decide(state))
            else:
                try:
                    self._install(self.decision.masked(down))
                except ValueError:  # an OD pair lost all its paths: the fallback knows better
                    self._install(fallback.decide(state))
        # A link going down or coming back changes weights only (its ports are remembered);
        # rules change only for a new path set or newly learned ports.
        if rebuilt or self.view.link_ports != ports_before:
            self._sync_all()

    def _schedule_topology_change(self) -> None:
        """Take several discoveries of one LLDP round in one update, not one update each."""
        if not self.topology_change_pending:
            self.topology_change_pending = True
            hub.spawn_after(0.05, self._pending_topology_change)

    def _pending_topology_change(self) -> None:
        self.topology_change_pending = False
        try:
            self._topology_changed()
            self._finish_reconciliations()
        except Exception:
            LOG.exception("topology update failed")

    def _label_rules(self, fabric: pipeline.Fabric) -> dict[int, list[pipeline.Flow]]:
        """Label rules per switch, recomputed only when the paths or their ports change."""
        key = (self.view.version, tuple(sorted(fabric.link_ports.items())))
        if self.label_cache[0] != key:
            self.label_cache = (key, pipeline.label_flows_by_switch(fabric))
        return self.label_cache[1]

    def _sync_all(self) -> None:
        for dpid in sorted(self.ready):  # a copy: handlers may change the set
            self._sync(dpid)

    def _sync(self, dpid: int) -> None:
        """Make the switch hold exactly the desired groups and rules: send only differences."""
        groups = self._desired_groups().get(dpid, {})
        self._sync_groups(dpid, groups)
        fabric = self.view.fabric()
        desired = (pipeline.desired_flows(fabric, dpid, self._label_rules(fabric))
                   if fabric is not None
                   else {rule.key: rule for rule in pipeline.base_flows()})
        installed = self.installed_flows.setdefault(dpid, {})
        changed = [rule for key, rule in desired.items() if installed.get(key) != rule]
        stale = [key for key in installed if key not in desired]
        cookie = self.config.cookie
        self._send(dpid, [openflow.flow_mod(rule, cookie) for rule in changed]
                   + [openflow.flow_delete(key, cookie) for key in stale])
        for rule in changed:
            installed[rule.key] = rule
        for key in stale:
            del installed[key]
        stale_groups = [gid for gid in self.installed_groups.get(dpid, {}) if gid not in groups]
        self._send(dpid, [openflow.group_delete(gid) for gid in stale_groups])
        for gid in stale_groups:
            del self.installed_groups[dpid][gid]

    def _desired_groups(self) -> dict[int, dict[int, pipeline.Group]]:
        """Every switch's groups for the current decision, computed once (cached per decision)."""
        fabric = self.view.fabric()
        if fabric is None or self.decision is None:
            return {}
        key = (self.view.version, tuple(sorted(fabric.link_ports.items())))
        decision, cached_key, groups = self.group_cache
        if decision is not self.decision or cached_key != key:
            groups = pipeline.groups_by_switch(fabric, self.decision)
            self.group_cache = (self.decision, key, groups)
        return groups

    def _sync_groups(self, dpid: int, groups: dict[int, pipeline.Group]) -> None:
        installed = self.installed_groups.setdefault(dpid, {})
        messages = []
        for gid, group in groups.items():
            if gid not in installed:
                messages.append(openflow.group_add(group))
            elif installed[gid] is None or not installed[gid].same_within(group):
                messages.append(openflow.group_modify(group))
            else:
                continue
            installed[gid] = group
        self._send(dpid, messages)

    # -- switches ----------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def on_state_change(self, ev) -> None:
        datapath = ev.datapath
        if datapath.id is None:
            return
        dpid = datapath.id
        if ev.state == MAIN_DISPATCHER:
            self.datapaths[dpid] = datapath
            self.ready.discard(dpid)
            LOG.info("switch %s connected", self.view.name(dpid))
            # Reconcile instead of wiping: read back what we installed before (this process or
            # an earlier one) and, once the links are known, send only what differs. The base
            # rules (LLDP and ARP to us) go in at once: discovery needs them, and re-adding an
            # identical rule replaces it in place.
            base = pipeline.base_flows()
            flows, groups = openflow.own_flows_request(self.config.cookie), \
                openflow.group_desc_request()
            self._send(dpid, [openflow.flow_mod(rule, self.config.cookie) for rule in base]
                       + [openflow.port_desc_request(), flows, groups])
            self.reconciling[dpid] = {"flows": flows.xid, "groups": groups.xid,
                                      "flow_keys": set(), "group_ids": set(), "hosts": [],
                                      "since": time.monotonic(), "base": base}
        elif self.datapaths.get(dpid) is datapath:
            del self.datapaths[dpid]
            self.ready.discard(dpid)
            self.reconciling.pop(dpid, None)
            self.awaiting = {key for key in self.awaiting if key[0] != dpid}
            gone = self.discovery.switch_down(dpid)
            LOG.warning("switch %s disconnected (%d links gone)", self.view.name(dpid), len(gone))
            self._lower_fence([key for key in self.fence if key[0] == dpid])
            self._topology_changed()

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    @guarded
    def on_flow_stats(self, ev) -> None:
        dpid, msg = ev.msg.datapath.id, ev.msg
        progress = self.reconciling.get(dpid)
        if progress is not None and msg.xid == progress["flows"]:
            progress["flow_keys"].update(openflow.flow_key(stats) for stats in msg.body)
            progress["hosts"] += [host for stats in msg.body
                                  if (host := openflow.delivered_host(stats)) is not None]
            if not msg.flags & OFP.OFPMPF_REPLY_MORE:
                progress["flows"] = None
                self._finish_reconciliations()
            return
        self.view.flow_stats(dpid, [
            (stats.match["eth_dst"], stats.byte_count,
             stats.duration_sec + stats.duration_nsec / 1e9)
            for stats in msg.body
            if stats.table_id == pipeline.TABLE_INGRESS and "eth_dst" in stats.match])
        self._statistics_in(dpid, "flows", not msg.flags & OFP.OFPMPF_REPLY_MORE)

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def on_group_desc(self, ev) -> None:
        dpid, msg = ev.msg.datapath.id, ev.msg
        progress = self.reconciling.get(dpid)
        if progress is None or msg.xid != progress["groups"]:
            return
        progress["group_ids"].update(group.group_id for group in msg.body)
        if not msg.flags & OFP.OFPMPF_REPLY_MORE:
            progress["groups"] = None
            self._finish_reconciliations()

    def _links_settled(self) -> bool:
        """Every switch of the topology file is connected and every link between them has
        been discovered (a switch still to reconnect after a restart would otherwise look
        like a settled network of one: its links' label rules and its hosts' rules removed)."""
        if self.expected is None:
            return False
        connected = {self.view.node_of.get(dpid) for dpid in self.datapaths}
        if not set(self.expected.nodes) <= connected:
            return False
        return set(self.expected.edges) <= self.view.up_links()

    def _finish_reconciliations(self) -> None:
        """Take over the switches whose old state has been read, once the links are known.

        Until then nothing is changed on them: a restarted controller that knows no links yet
        would otherwise remove the label rules that carry the traffic.
        """
        settled = self._links_settled()
        now = time.monotonic()
        # Hosts first, from every switch read so far: a switch taken over before the hosts
        # of the others are known would lose its ingress rules towards them.
        for dpid, progress in self.reconciling.items():
            if progress["flows"] is None:
                for mac, port in progress["hosts"]:
                    if mac not in self.view.hosts:
                        self.view.learn_host(mac, "", dpid, port)  # IP comes with its next ARP
        for dpid, progress in list(self.reconciling.items()):
            if progress["flows"] is not None or progress["groups"] is not None:
                continue
            if not settled and now - progress["since"] < self.config.link_timeout_s:
                continue
            del self.reconciling[dpid]
            self.view.links_changed()
            # Unknown content (None) differs from every desired rule: each is re-added in
            # place, which replaces it atomically; keys we no longer want are deleted.
            installed = dict.fromkeys(progress["flow_keys"])
            installed.update({rule.key: rule for rule in progress["base"]})
            self.installed_flows[dpid] = installed
            self.installed_groups[dpid] = dict.fromkeys(progress["group_ids"])
            self.ready.add(dpid)
            LOG.info("switch %s: found %d own rules, %d groups, %d hosts; reconciling",
                     self.view.name(dpid), len(progress["flow_keys"]),
                     len(progress["group_ids"]), len(progress["hosts"]))
            if self.decision is None:
                self._decide_and_install()
            self._sync(dpid)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def on_port_desc(self, ev) -> None:
        dpid = ev.msg.datapath.id
        live = [port for port in ev.msg.body if _is_live(port)]
        self.discovery.switch_up(dpid, {port.port_no: port.hw_addr for port in live})
        self.view.switch_added(dpid, {port.port_no: port.curr_speed / 1000 for port in live
                                      if port.curr_speed})

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def on_port_status(self, ev) -> None:
        dpid, port = ev.msg.datapath.id, ev.msg.desc
        if ev.msg.reason != OFP.OFPPR_DELETE and _is_live(port):
            if self.discovery.port_up(dpid, port.port_no, port.hw_addr):
                LOG.info("port %s:%d up", self.view.name(dpid), port.port_no)
        elif port.port_no in self.discovery.ports(dpid):
            gone = self.discovery.port_down(dpid, port.port_no)
            LOG.warning("port %s:%d down (%s)", self.view.name(dpid), port.port_no,
                        ", ".join(self._link_name(link) for link in gone) or "no link")
            if gone:
                self._topology_changed()

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    @guarded
    def on_port_stats(self, ev) -> None:
        msg = ev.msg
        self.view.port_stats(msg.datapath.id, [
            (stats.port_no, stats.tx_bytes, stats.duration_sec + stats.duration_nsec / 1e9)
            for stats in msg.body if stats.port_no <= OFP.OFPP_MAX])
        self._statistics_in(msg.datapath.id, "ports", not msg.flags & OFP.OFPMPF_REPLY_MORE)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @guarded
    def on_error(self, ev) -> None:
        msg = ev.msg
        LOG.error("switch %s rejected a message: type %d code %d", self.view.name(
            msg.datapath.id), msg.type, msg.code)

    # -- packets -----------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def on_packet_in(self, ev) -> None:
        msg = ev.msg
        dpid, in_port, data = msg.datapath.id, msg.match.get("in_port", 0), bytes(msg.data)
        if len(data) < 14:
            LOG.debug("ignoring a runt frame of %d bytes from %s", len(data), self.view.name(dpid))
            return
        ethertype = int.from_bytes(data[12:14], "big")
        if ethertype == ether_types.ETH_TYPE_LLDP:
            link = self.discovery.lldp_received(dpid, in_port, data)
            if link is not None:
                LOG.info("link %s discovered", self._link_name(link))
                self._schedule_topology_change()
            return
        try:
            frame = packet.Packet(data)
        except Exception:
            LOG.info("ignoring a malformed packet-in from %s:%d", self.view.name(dpid), in_port)
            return
        eth = frame.get_protocol(ethernet.ethernet)
        if eth is None or eth.src == PROBE_MAC:
            return
        request, ip = frame.get_protocol(arp.arp), frame.get_protocol(ipv4.ipv4)
        if (problem := _malformed(eth, request, ip)) is not None:
            LOG.info("ignoring a malformed packet-in from %s:%d (%s)", self.view.name(dpid),
                     in_port, problem)
            return
        if request is not None:
            self._on_arp(dpid, in_port, request)
        elif ip is not None:
            self._learn(eth.src, ip.src, dpid, in_port)
            if self.view.host_by_ip(ip.dst) is None:
                self._probe(ip.dst)
            elif self._has_ingress_rule(dpid, eth.dst) and self.view.is_edge_port(dpid, in_port):
                # The rule exists but the switch's flow cache had not caught up yet (the
                # userspace datapath revalidates asynchronously): deliver this packet anyway.
                self._send(dpid, [openflow.packet_to_table(in_port, data)])

    def _has_ingress_rule(self, dpid: int, mac: str) -> bool:
        return any(key[0] == pipeline.TABLE_INGRESS and ("eth_dst", mac) in key[2]
                   for key in self.installed_flows.get(dpid, {}))

    def _on_arp(self, dpid: int, in_port: int, message: arp.arp) -> None:
        self._learn(message.src_mac, message.src_ip, dpid, in_port)
        if message.opcode != arp.ARP_REQUEST or message.src_ip == message.dst_ip:
            return
        target = self.view.host_by_ip(message.dst_ip)
        if target is None:
            self.pending_arp[message.dst_ip].add((dpid, in_port, message.src_mac, message.src_ip))
            self._probe(message.dst_ip)
        else:
            self._answer_arp(target, dpid, in_port, message.src_mac, message.src_ip)

    def _answer_arp(self, target, dpid: int, port: int, asker_mac: str, asker_ip: str) -> None:
        """Proxy ARP: the controller answers for the host, so nothing is ever flooded."""
        reply = openflow.arp_packet(arp.ARP_REPLY, target.mac, target.ip, asker_mac, asker_ip)
        self._when_installed(lambda: self._send(dpid, [openflow.packet_out(port, reply)]))

    def _probe(self, ip: str) -> None:
        """Ask every edge port who has ``ip`` (at most once a second per address)."""
        now = time.monotonic()
        if now - self.last_probe.get(ip, -PROBE_INTERVAL_S) < PROBE_INTERVAL_S:
            return
        self.last_probe[ip] = now
        probe = openflow.arp_packet(arp.ARP_REQUEST, PROBE_MAC, "0.0.0.0", "00:00:00:00:00:00",
                                    ip, eth_dst="ff:ff:ff:ff:ff:ff")
        for dpid, port in self.view.edge_ports():
            self._send(dpid, [openflow.packet_out(port, probe)])

    def _learn(self, mac: str, ip: str, dpid: int, port: int) -> None:
        if ip == "0.0.0.0" or not self.view.is_edge_port(dpid, port):
            return
        host = self.view.learn_host(mac, ip, dpid, port)
        if host is None:
            return
        LOG.info("host %s (%s) at %s:%d", ip, mac, self.view.name(dpid), port)
        self._sync_all()
        self._raise_fence()
        for asker in self.pending_arp.pop(ip, ()):
            self._answer_arp(host, *asker)

    # -- ordering across switches ------------------------------------------------------------
    def _raise_fence(self) -> None:
        """Barriers on every switch: what was sent before is installed once all have answered.

        Each switch has its own send queue, so rules sent to one can arrive after a packet-out
        sent to another; an ARP answer must not let a host send before the rules towards and
        back from its peer are everywhere.
        """
        now = time.monotonic()
        for dpid in sorted(self.ready):  # a copy: handlers may change the set
            barrier = openflow.barrier()
            self._send(dpid, [barrier])
            self.fence[dpid, barrier.xid] = now

    def _when_installed(self, action) -> None:
        if self.fence:
            self.after_fence.append(action)
        else:
            action()

    def _lower_fence(self, done: list[tuple[int, int]]) -> None:
        for key in done:
            self.fence.pop(key, None)
        if not self.fence:
            actions, self.after_fence = self.after_fence, []
            for action in actions:
                action()

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    @guarded
    def on_barrier(self, ev) -> None:
        self._lower_fence([(ev.msg.datapath.id, ev.msg.xid)])

    # -- views -----------------------------------------------------------------------------
    def _link_name(self, link: Link) -> str:
        return (f"{self.view.name(link.src)}:{link.src_port} -> "
                f"{self.view.name(link.dst)}:{link.dst_port}")

    def topology_view(self) -> dict[str, Any]:
        view = self.view
        switches = [{"dpid": dpid, "name": view.name(dpid), "ports": len(self.discovery.ports(dpid))}
                    for dpid in self.discovery.switches]
        discovered = [{"src": link.src, "src_port": link.src_port, "dst": link.dst,
                       "dst_port": link.dst_port, "src_name": view.name(link.src),
                       "dst_name": view.name(link.dst)} for link in self.discovery.links]
        document = {"switches": switches, "links": discovered, "version": view.version}
        if view.state is not None:
            state, scale = view.state, view.capacity_scale
            utilization = state.utilization
            # Rates as the switches carry them (the state is in the topology file's units).
            document["graph_links"] = [
                {"src": str(u), "dst": str(v), "capacity_mbps": float(state.capacities[i]) / scale,
                 "load_mbps": float(state.loads_mbps[i]) / scale,
                 "utilization": float(utilization[i]), "up": (u, v) not in state.down_links}
                for i, (u, v) in enumerate(state.path_set.edges)]
            document["capacity_scale"] = scale
        if self.expected is not None:
            document["mismatch"] = self._mismatch()
        return document

    def _mismatch(self) -> dict[str, list]:
        """What the topology file and the discovered network disagree on (reported, not fatal)."""
        view = self.view
        found = {(view.name(link.src), view.name(link.dst)) for link in self.discovery.links}
        expected = {(str(u), str(v)) for u, v in self.expected.edges}
        known = set(view.node_of)
        return {
            "missing_links": sorted(map(list, expected - found)),
            "unexpected_links": sorted(map(list, found - expected)),
            "missing_switches": sorted(str(view.node_of[dpid]) for dpid in known
                                       if dpid not in self.datapaths),
            "unknown_switches": sorted(dpid for dpid in self.datapaths if dpid not in known),
        }

    def paths_view(self) -> dict[str, Any]:
        state, decision = self.view.state, self.decision
        if state is None:
            return {"version": self.view.version, "od_pairs": []}
        path_set = state.path_set
        pairs = []
        for od, (src, dst) in enumerate(path_set.od_pairs):
            pairs.append({"src": str(src), "dst": str(dst), "paths": [
                {"id": int(p), "label": pipeline.label_of(int(p)),
                 "nodes": [str(n) for n in path_set.paths[p]],
                 "weight": float(decision.weights[p]) if decision is not None else None}
                for p in path_set.paths_of(od)]})
        return {"version": self.view.version, "od_pairs": pairs}

    def hosts_view(self) -> dict[str, Any]:
        return {"hosts": [{"mac": h.mac, "ip": h.ip, "switch": self.view.name(h.dpid),
                           "dpid": h.dpid, "port": h.port}
                          for h in sorted(self.view.hosts.values(), key=lambda h: h.ip)]}

    def traffic_view(self, request: Request) -> dict[str, Any]:
        """The latest measured OD matrix, as the switches carry it (``?units=topology``: in
        the topology file's units, as the policies see it)."""
        units = request.query.get("units", "network")
        if units not in ("network", "topology"):
            raise HttpError(HTTPStatus.BAD_REQUEST, "units must be network or topology")
        state = self.view.state
        if state is None or state.last_matrix is None:
            return {"nodes": [], "od_mbps": [], "updated_at": None, "units": units}
        scale = 1.0 if units == "topology" else self.view.capacity_scale
        return {"nodes": [str(n) for n in state.path_set.nodes],
                "od_mbps": (state.last_matrix / scale).tolist(), "updated_at": state.updated_at,
                "units": units}

    def status_view(self) -> dict[str, Any]:
        state, loop = self.view.state, self.loop
        return {
            "mode": loop.mode.value,
            "source": loop.source,
            "model": loop.model_id,
            "model_resolved": self.model_resolved if loop.model_id else None,
            "health": {"trusted": loop.health.trusted if loop.agent else False,
                       "reasons": loop.health.reasons if loop.agent else ["no model loaded"],
                       "healthy_streak": loop.health.streak},
            "last_decision": self.last_decision_at,
            "switches": len(self.datapaths),
            "links": len(self.discovery.links),
            "hosts": len(self.view.hosts),
            "topology": self.config.topology,
            "topology_version": self.view.version,
            "mlu": float(state.mlu) if state is not None else None,
            "last_statistics": state.updated_at if state is not None else None,
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    def mode_view(self) -> dict[str, Any]:
        rollout = self.loop.rollout
        return {"mode": self.loop.mode.value, "source": self.loop.source,
                "rollout": rollout.view() if rollout is not None else None}

    def set_mode(self, request: Request) -> dict[str, Any]:
        require_token(request, self.api_token)
        body = request.json_object({"mode", *ROLLOUT_FIELDS}, required={"mode"})
        mode = body.pop("mode")
        if mode not in ("shadow", "active", "external"):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY,
                            f"mode must be 'shadow', 'active' or 'external', got {mode!r}")
        if mode == "external" and self.api_token is None:
            raise HttpError(HTTPStatus.FORBIDDEN, "external mode needs a configured api_token")
        try:
            rollout = self._rollout(body)
            changed = Mode(mode) is not self.loop.mode or rollout != self.loop.rollout
            if changed:
                self.loop.set_mode(Mode(mode), rollout)
        except ValueError as error:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
        if changed:
            LOG.warning("mode -> %s (by REST request)", mode)
            self._decide_and_install()  # takes effect now, not at the next interval
        return self.mode_view()

    def _rollout(self, fields: dict[str, Any]) -> Rollout | None:
        """A gradual activation from these fields (None: none asked for); ``ValueError``."""
        state = self.view.state
        nodes = [str(node) for node in state.path_set.nodes] if state is not None else None
        return Rollout.from_fields(fields, nodes, widen_after=self.config.health.recover_after)

    def set_model(self, request: Request) -> dict[str, Any]:
        if self.api_token is None:
            raise HttpError(HTTPStatus.FORBIDDEN, "model changes need a configured api_token "
                            "(or send SIGHUP to reload the configured model file)")
        require_token(request, self.api_token)
        spec = request.json_object({"path"}, required={"path"})["path"]
        if not isinstance(spec, str) or not spec:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, "path must be a non-empty string")
        try:
            model_id = self.load_model(spec)
        except (ValueError, OSError) as error:
            LOG.error("model %s refused, %s keeps running: %s", spec, self.loop.model_id, error)
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY,
                            f"model refused, the current one keeps running: {error}") from None
        return {"model": model_id, "trusted": False,
                "signed": self.config.trusted_keys is not None}

    def put_decision(self, request: Request) -> dict[str, Any]:
        """In external mode: install these path weights now, if they pass the safety checks."""
        if self.api_token is None:
            raise HttpError(HTTPStatus.FORBIDDEN, "external decisions need a configured api_token")
        require_token(request, self.api_token)
        if self.loop.mode is not Mode.EXTERNAL:
            raise HttpError(HTTPStatus.CONFLICT, f"mode is {self.loop.mode.value}: external "
                            "decisions are accepted only in external mode")
        weights = request.json_object({"weights"}, required={"weights"})["weights"]
        state = self.view.state
        if state is None:
            raise HttpError(HTTPStatus.CONFLICT, "no topology yet")
        if not isinstance(weights, list) or len(weights) != state.path_set.n_paths or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, f"weights must be a list of "
                            f"{state.path_set.n_paths} numbers (one per path id)")
        self.loop.external.weights = np.asarray(weights, dtype=np.float64)
        self._decide_and_install()
        record = self.loop.log.records[-1] if self.loop.log.records else None
        return {"source": self.loop.source, "reasons": record.reasons if record else [],
                "seq": record.seq if record else None}

    def decisions_view(self, request: Request) -> dict[str, Any]:
        limit = request.int_query("limit", 20, 1, 10_000)
        return {"decisions": self.loop.log.latest(limit)}

    def metrics_view(self, request: Request) -> Response:
        return Response(self.metrics.exposition(), content_type=self.metrics.content_type)

    def rest_routes(self) -> dict:
        def view(function):
            return lambda request: function()

        return {
            "/te/v1/status": {"GET": view(self.status_view)},
            "/te/v1/mode": {"GET": view(self.mode_view), "PUT": self.set_mode},
            "/te/v1/model": {"PUT": self.set_model},
            "/te/v1/decision": {"PUT": self.put_decision},
            "/te/v1/topology": {"GET": view(self.topology_view)},
            "/te/v1/paths": {"GET": view(self.paths_view)},
            "/te/v1/hosts": {"GET": view(self.hosts_view)},
            "/te/v1/traffic": {"GET": self.traffic_view},
            "/te/v1/decisions": {"GET": self.decisions_view},
            "/metrics": {"GET": self.metrics_view},
        }


def _read_agent(spec: str, path_set, topology: str, trusted_keys: str | None):
    from agents.model_file import load_agent  # torch is imported only when a model is used

    return load_agent(spec, path_set, topology, trusted_keys=trusted_keys)


def off_hub(function, *args: Any, deadline_s: float, what: str) -> Any:
    """``function(*args)`` in a worker thread, waited for at most ``deadline_s``, when running
    on os-ken's eventlet hub: reading a model file must not stall OpenFlow and REST, which the
    hub also serves. A late call finishes in the background and its result is dropped. Off
    the hub (the app in a test, without eventlet's patches) it is a plain call."""
    if not eventlet.patcher.is_monkey_patched("socket"):
        return function(*args)
    try:
        with eventlet.Timeout(deadline_s):
            return tpool.execute(function, *args)
    except eventlet.Timeout:
        raise ValueError(f"{what}: not done within {deadline_s:g} s, given up") from None


def green_runner(call, budget_s: float) -> Outcome:
    """Run the agent in a real thread (torch releases no green thread) and wait at most the
    budget; a late call finishes in the background and its result is dropped."""
    started = time.perf_counter()
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


def _malformed(eth, request, ip) -> str | None:
    """Why an ARP or IPv4 frame from a host cannot be learned from (None: it can).

    os-ken parses what it can and leaves the rest as raw bytes, so a truncated ARP or IPv4
    frame arrives without its protocol, and a garbled one with nonsense fields: neither may
    teach the controller a host (a broadcast MAC, or a known host's MAC at a broadcast IP).
    """
    if eth.ethertype == ether_types.ETH_TYPE_ARP:
        if request is None:
            return "truncated ARP"
        if ((request.hwtype, request.proto, request.hlen, request.plen) != (1, 0x0800, 6, 4)
                or request.opcode not in (arp.ARP_REQUEST, arp.ARP_REPLY)):
            return "not an ARP for IPv4 over Ethernet"
        if not _unicast_mac(request.src_mac) or not _host_address(request.src_ip, zero=True):
            return f"ARP sender {request.src_mac} {request.src_ip}"
    elif eth.ethertype == ether_types.ETH_TYPE_IP:
        if ip is None:
            return "truncated IPv4"
        if ip.version != 4 or ip.header_length < 5:
            return "bad IPv4 header"
        if not _host_address(ip.src):
            return f"IPv4 source {ip.src}"
    if not _unicast_mac(eth.src):
        return f"source MAC {eth.src}"
    return None


def _unicast_mac(mac: str) -> bool:
    return not int(mac.split(":")[0], 16) & 1


def _host_address(address: str, zero: bool = False) -> bool:
    """An address a host may have (or 0.0.0.0, which ARP probes use, with ``zero``)."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    if ip.is_unspecified:
        return zero
    return not (ip.is_multicast or ip.is_loopback or ip == ipaddress.IPv4Address(
        "255.255.255.255"))


def _is_live(port) -> bool:
    """A physical port that is administratively and physically up."""
    return (port.port_no <= OFP.OFPP_MAX
            and not port.config & OFP.OFPPC_PORT_DOWN
            and not port.state & OFP.OFPPS_LINK_DOWN)
