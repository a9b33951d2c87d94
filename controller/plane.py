"""The controller without os-ken: every event in, the OpenFlow messages to send out.

:class:`ControlPlane` is what Faucet calls a ``Valve``: the app translates each os-ken event
into one call here, with the time as an argument (:class:`Now`), and sends the
``(dpid, message)`` pairs that come back. It joins the plain objects: ``LinkDiscovery`` and
``NetworkView`` (what is known), ``DecisionLoop`` (who decides), ``SwitchSync`` (what the
switches hold), ``Reconciler`` (restart), ``HostResolver`` (hosts, ARP) and ``Fence``
(ordering across switches). So restart, malformed input, ARP ordering and link failures are
unit-tested against fake switches, without root.

One rule keeps the returned messages in order: :meth:`ControlPlane.decide` may yield to other
green threads (the agent runs in a worker thread), so a call decides before it computes any
message; messages computed before a yield would otherwise be sent after ones computed later.
"""
from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import networkx as nx

from agents.baselines import ShortestPathPolicy, fallback_policy
from controller import faults, openflow, pipeline
from controller.config import ControllerConfig
from controller.decisions import DecisionLog, DecisionLoop, Mode, Rollout, Runner
from controller.discovery import Link, LinkDiscovery
from controller.hosts import ARP_REQUEST, ArpIn, HostResolver
from controller.metrics import Metrics
from controller.network import NetworkView
from controller.openflow import FlowEntry, Port, Send
from controller.recorder import Recorder
from controller.switches import Fence, Reconciler, SwitchSync
from sim.decision import Decision
from sim.paths import DEFAULT_K, DEFAULT_METHOD, PathSet
from sim.policy import Policy
from topologies.catalog import load_topology

LOG = logging.getLogger("ryute.controller")

AgentReader = Callable[[str, PathSet], Any]
"""(model spec, path set) -> the agent (a ``Policy`` with ``metadata``); raises ValueError or
OSError for a file that is refused."""


class Now(NamedTuple):
    """The time of an event: ``wall`` (epoch seconds) is recorded in decisions and compared
    with the statistics' age; ``mono`` (monotonic seconds) times probes, barriers and
    reconciliation, which a wall-clock step must not stretch or cut short."""

    wall: float
    mono: float

    @classmethod
    def read(cls) -> Now:
        return cls(time.time(), time.monotonic())


def read_agent(spec: str, path_set: PathSet, topology: str, trusted_keys: str | None) -> Any:
    from agents.model_file import load_agent  # torch is imported only when a model is used

    return load_agent(spec, path_set, topology, trusted_keys=trusted_keys)


def candidate_paths(config: ControllerConfig) -> tuple[int, str]:
    """``(k, method)`` of the candidate paths: the configuration's where it names them, the
    rest from the model (``agents.model_file.model_paths``), 4 hops without a model."""
    k, method = config.paths_k, config.path_method
    if k is None or method is None:
        model_k, model_method = DEFAULT_K, DEFAULT_METHOD
        if config.model:
            from agents.model_file import model_paths  # torch only when a model is used

            model_k, model_method = model_paths(config.model, config.topology or "",
                                                config.trusted_keys)
        k, method = k or model_k, method or model_method
        LOG.info("candidate paths: %d per OD pair by %s (%s)", k, method,
                 "the model's" if config.model else "the default")
    return k, method


class ControlPlane:
    """The whole controller as a plain object: events in, ``(dpid, message)`` pairs out."""

    def __init__(self, config: ControllerConfig, *, runner: Runner | None = None,
                 reader: AgentReader | None = None) -> None:
        self.config = config
        self.expected: nx.DiGraph | None = (
            load_topology(config.topology) if config.topology else None)
        self.discovery = LinkDiscovery(
            max(2, math.ceil(config.link_timeout_s / config.lldp_interval_s)))
        paths_k, path_method = candidate_paths(config)
        self.view = NetworkView(
            self.expected, self.discovery, paths_k=paths_k,
            path_method=path_method, capacity_scale=config.capacity_scale,
            default_capacity_mbps=config.default_capacity_mbps,
            local_repair=config.local_repair)
        self.metrics = Metrics(poll_interval_s=config.poll_interval_s,
                               capacity_scale=config.capacity_scale,
                               od_pairs=config.metrics_od_pairs)
        # Without a topology file there is no fallback until discovery finds a network; the
        # plane decides only once there is one (see decide()).
        self.loop = DecisionLoop(
            cast(Policy, self._fallback_policy()), poll_interval_s=config.poll_interval_s,
            mode=Mode(config.mode), runner=runner, health=config.health,
            log=DecisionLog(path=config.decision_log))
        try:
            self.loop.set_mode(Mode(config.mode), self.rollout(config.rollout_fields()))
        except ValueError as error:  # e.g. a canary switch the topology does not have
            LOG.error("rollout refused, starting in shadow mode: %s", error)
            self.loop.set_mode(Mode.SHADOW)
        self._xids = itertools.count(1)  # of the requests whose replies are matched
        self.sync = SwitchSync(config.cookie)
        self.reconciler = Reconciler()
        self.hosts = HostResolver(self.view)
        self.fence = Fence(lambda: next(self._xids))
        self.connected: set[int] = set()
        self.decision: Decision | None = None
        self.last_decision_at: float | None = None
        self.awaiting: set[tuple[int, str]] = set()  # statistics replies of this round
        self.reader: AgentReader = reader or (lambda spec, path_set: read_agent(
            spec, path_set, config.topology or "", config.trusted_keys))
        self.model_spec = config.model
        self.model_resolved: str | None = None  # for --model default: which file, and why
        self._deciding = threading.Lock()  # green under os-ken's eventlet hub
        self.metrics.watch_switches(lambda: len(self.connected),
                                    self.expected.number_of_nodes() if self.expected is not None else 0)
        self.recorder = Recorder(config.record_dir, config.poll_interval_s,
                                 config.record_per_file, config.record_files) \
            if config.record_dir else None

    def name(self, dpid: int) -> str:
        return self.view.name(dpid)

    def rollout(self, fields: dict[str, Any]) -> Rollout | None:
        """A gradual activation from these fields (None: none asked for); ``ValueError``."""
        state = self.view.state
        nodes = [str(node) for node in state.path_set.nodes] if state is not None else None
        return Rollout.from_fields(fields, nodes, widen_after=self.config.health.recover_after)

    def link_name(self, link: Link) -> str:
        return f"{self.name(link.src)}:{link.src_port} -> {self.name(link.dst)}:{link.dst_port}"

    # -- policies ----------------------------------------------------------------------------
    def _fallback_policy(self) -> ShortestPathPolicy | None:
        """Shortest paths under inverse-capacity weights, ECMP ties, live links only."""
        state = self.view.state
        return None if state is None else fallback_policy(state.path_set)

    def load_model(self, spec: str) -> str:
        """Load (or hot-swap) the agent; on any error the current agent keeps running."""
        state = self.view.state
        if state is None:
            raise ValueError("no topology yet: a model needs the network it was trained for")
        agent = self.reader(spec, state.path_set)
        model_id = agent.metadata.get("id", str(spec))
        self.model_resolved = agent.metadata.get("resolved")  # which default, and why
        self.loop.set_agent(faults.wrap_if_enabled(agent), model_id)
        self.model_spec = spec
        LOG.info("model %s loaded (mode %s)", model_id, self.loop.mode.value)
        return model_id

    def load_configured_model(self) -> None:
        """The model of the configuration; one that cannot be loaded is a ``ValueError``
        (the controller refuses to start), unless ``allow_fallback_only``."""
        if self.model_spec:
            try:
                self.load_model(self.model_spec)
            except (ValueError, OSError) as error:
                if not self.config.allow_fallback_only:
                    raise ValueError(f"{error}; fix the model, or allow the fallback alone "
                                     "(--allow-fallback-only, or allow_fallback_only = true "
                                     "in the config file)") from None
                LOG.error("agent not loaded, the fallback decides alone: %s", error)

    def _path_set_changed(self) -> None:
        """A new topology version: new fallback; the agent only if its model fits the new paths."""
        fallback = self._fallback_policy()
        if fallback is not None:  # always, after a rebuild
            self.loop.set_fallback(fallback)
        if self.loop.agent is not None and self.model_spec:
            self.loop.set_agent(None, None)
            try:
                self.load_model(self.model_spec)
            except (ValueError, OSError) as error:
                LOG.error("agent dropped after the topology changed: %s", error)

    # -- decisions and installation ----------------------------------------------------------
    def decide(self, now: Now) -> list[Send]:
        """One interval of the decision loop: fallback and agent decide; install the winner.

        One at a time: a decision asked for by a mode change must not overlap an interval's
        decision still waiting for the agent (the agent would look busy, hence unhealthy).
        """
        with self._deciding:
            state = self.view.state
            if state is None or self.loop.fallback is None:
                return []
            started = time.perf_counter()
            decision, record = self.loop.decide(state, now.wall)
            sends = self._install(decision)
            self.last_decision_at = record.time
            self.metrics.decision(record, time.perf_counter() - started)
            return sends

    def _install(self, decision: Decision) -> list[Send]:
        self.decision = decision
        return self.sync.install(self.view.fabric(), self.view.version, decision)

    def _sync(self, dpid: int) -> list[Send]:
        return self.sync.sync(dpid, self.view.fabric(), self.view.version, self.decision)

    def _sync_all(self) -> list[Send]:
        return self.sync.sync_all(self.view.fabric(), self.view.version, self.decision)

    def topology_changed(self) -> list[Send]:
        """Links changed: move weight off dead paths at once, before any new decision."""
        ports_before = dict(self.view.link_ports)
        rebuilt = self.view.links_changed()
        if rebuilt:
            self._path_set_changed()
        state, fallback = self.view.state, self.loop.fallback
        sends = []
        if state is not None and fallback is not None:
            if rebuilt or self.decision is None or self.loop.source == "fallback":
                sends += self._install(fallback.decide(state))
            else:
                try:
                    sends += self._install(self.decision.masked(self.view.down_links()))
                except ValueError:  # an OD pair lost all its paths: the fallback knows better
                    sends += self._install(fallback.decide(state))
        # A link going down or coming back changes weights only (its ports are remembered);
        # rules change only for a new path set or newly learned ports.
        if rebuilt or self.view.link_ports != ports_before:
            sends += self._sync_all()
        return sends

    # -- timers ------------------------------------------------------------------------------
    def lldp_probes(self) -> list[Send]:
        return [(dpid, openflow.packet_out(port_no, frame))
                for dpid, port_no, frame in self.discovery.probes()]

    def expire_links(self) -> list[Send]:
        expired = self.discovery.expire()
        for link in expired:
            LOG.warning("link %s timed out", self.link_name(link))
        return self.topology_changed() if expired else []

    def fence_timeouts(self, now: Now) -> list[Send]:
        return self.fence.expire(now.mono)

    def poll_round(self, now: Now) -> list[Send]:
        """Ask every switch for its counters; the interval closes when all have answered."""
        # A switch did not answer in a whole interval: close without it.
        sends = self._close_interval(now) if self.awaiting else []
        self.awaiting = {(dpid, kind) for dpid in self.sync.ready for kind in ("ports", "flows")}
        for dpid in sorted(self.sync.ready):
            sends += [(dpid, openflow.port_stats_request()),
                      (dpid, openflow.own_flows_request(self.config.cookie,
                                                        pipeline.TABLE_INGRESS))]
        return sends

    def _statistics_in(self, dpid: int, kind: str, last_part: bool, now: Now) -> list[Send]:
        if not last_part or (dpid, kind) not in self.awaiting:
            return []
        self.awaiting.discard((dpid, kind))
        return [] if self.awaiting else self._close_interval(now)

    def _close_interval(self, now: Now) -> list[Send]:
        """Statistics in: loads and OD matrix into the state, then decide and install."""
        self.awaiting = set()
        state = self.view.state
        if state is None:
            return []
        matrix = self.view.record_interval(now.wall)
        if self.recorder is not None:
            self.recorder.add(state.path_set.nodes, matrix, now.wall)
        self.loop.measured(state.mlu)  # of the interval the last decision ran in
        self.metrics.interval(state)
        return self.decide(now)

    # -- switches ----------------------------------------------------------------------------
    def switch_connected(self, dpid: int, now: Now) -> list[Send]:
        """Reconcile instead of wiping: read back what we installed before (this process or
        an earlier one) and, once the links are known, send only what differs. The base rules
        (LLDP and ARP to us) go in at once: discovery needs them, and re-adding an identical
        rule replaces it in place."""
        self.connected.add(dpid)
        self.sync.drop(dpid)
        LOG.info("switch %s connected", self.name(dpid))
        base = pipeline.base_flows()
        flows, groups = openflow.own_flows_request(self.config.cookie), \
            openflow.group_desc_request()
        flows.set_xid(next(self._xids))
        groups.set_xid(next(self._xids))
        self.reconciler.start(dpid, flows.xid, groups.xid, base, now.mono)
        return [(dpid, openflow.flow_mod(rule, self.config.cookie)) for rule in base] + [
            (dpid, openflow.port_desc_request()), (dpid, flows), (dpid, groups)]

    def switch_disconnected(self, dpid: int) -> list[Send]:
        self.connected.discard(dpid)
        self.sync.drop(dpid)
        self.reconciler.forget(dpid)
        self.awaiting = {key for key in self.awaiting if key[0] != dpid}
        gone = self.discovery.switch_down(dpid)
        LOG.warning("switch %s disconnected (%d links gone)", self.name(dpid), len(gone))
        return self.fence.drop_switch(dpid) + self.topology_changed()

    def flow_stats(self, dpid: int, xid: int, entries: list[FlowEntry], more: bool,
                   now: Now) -> list[Send]:
        if self.reconciler.flows_in(dpid, xid, entries, more):
            return [] if more else self.finish_reconciliations(now)
        self.view.flow_stats(dpid, [
            (entry.match["eth_dst"], entry.byte_count, entry.duration_s) for entry in entries
            if entry.table == pipeline.TABLE_INGRESS and "eth_dst" in entry.match])
        return self._statistics_in(dpid, "flows", not more, now)

    def group_desc(self, dpid: int, xid: int, group_ids: list[int], more: bool,
                   now: Now) -> list[Send]:
        if self.reconciler.groups_in(dpid, xid, group_ids, more) and not more:
            return self.finish_reconciliations(now)
        return []

    def port_stats(self, dpid: int, samples: list[tuple[int, int, float]], more: bool,
                   now: Now) -> list[Send]:
        """(port, tx_bytes, duration_s) of the physical ports of one switch."""
        self.view.port_stats(dpid, samples)
        return self._statistics_in(dpid, "ports", not more, now)

    def _links_settled(self) -> bool:
        """Every switch of the topology file is connected and every link between them has
        been discovered (a switch still to reconnect after a restart would otherwise look
        like a settled network of one: its links' label rules and its hosts' rules removed)."""
        if self.expected is None:
            return False
        connected = {self.view.node_of.get(dpid) for dpid in self.connected}
        if not set(self.expected.nodes) <= connected:
            return False
        return set(self.expected.edges) <= self.view.up_links()

    def finish_reconciliations(self, now: Now) -> list[Send]:
        """Take over the switches whose old state has been read, once the links are known."""
        settled = self._links_settled()
        for dpid, mac, port in self.reconciler.hosts_found():
            if mac not in self.view.hosts:
                self.view.learn_host(mac, "", dpid, port)  # IP comes with its next ARP
        sends: list[Send] = []
        for dpid, reading in self.reconciler.take_ready(settled, now.mono,
                                                        self.config.link_timeout_s):
            self.view.links_changed()
            self.sync.adopt(dpid, reading.flow_keys, reading.group_ids, reading.base)
            LOG.info("switch %s: found %d own rules, %d groups, %d hosts; reconciling",
                     self.name(dpid), len(reading.flow_keys), len(reading.group_ids),
                     len(reading.hosts))
            if self.decision is None:  # only ever before any message of this call
                sends += self.decide(now)
            sends += self._sync(dpid)
        return sends

    def port_desc(self, dpid: int, ports: list[Port]) -> None:
        live = [port for port in ports if port.live]
        self.discovery.switch_up(dpid, {port.port_no: port.hw_addr for port in live})
        self.view.switch_added(dpid, {port.port_no: port.speed_mbps for port in live
                                      if port.speed_mbps})

    def port_status(self, dpid: int, port: Port, deleted: bool) -> list[Send]:
        if not deleted and port.live:
            if self.discovery.port_up(dpid, port.port_no, port.hw_addr):
                LOG.info("port %s:%d up", self.name(dpid), port.port_no)
        elif port.port_no in self.discovery.ports(dpid):
            gone = self.discovery.port_down(dpid, port.port_no)
            LOG.warning("port %s:%d down (%s)", self.name(dpid), port.port_no,
                        ", ".join(self.link_name(link) for link in gone) or "no link")
            if gone:
                return self.topology_changed()
        return []

    def barrier_reply(self, dpid: int, xid: int) -> list[Send]:
        return self.fence.lower([(dpid, xid)])

    # -- packets -----------------------------------------------------------------------------
    def lldp_in(self, dpid: int, in_port: int, data: bytes) -> bool:
        """An LLDP frame; True when it proves a new link (then call :meth:`topology_changed`,
        once for all the links of one round)."""
        link = self.discovery.lldp_received(dpid, in_port, data)
        if link is not None:
            LOG.info("link %s discovered", self.link_name(link))
        return link is not None

    def packet_in(self, dpid: int, in_port: int, data: bytes, now: Now) -> list[Send]:
        """A frame from a host that no rule handled: learn, answer ARP, probe, re-inject."""
        if len(data) < 14:
            LOG.debug("ignoring a runt frame of %d bytes from %s", len(data), self.name(dpid))
            return []
        packet = self.hosts.read(dpid, in_port, data)
        if isinstance(packet, ArpIn):
            return self._arp_in(dpid, in_port, packet, now)
        if packet is None:
            return []
        sends = self._learn(packet.src_mac, packet.src_ip, dpid, in_port, now)
        if self.view.host_by_ip(packet.dst_ip) is None:
            sends += self.hosts.probe(packet.dst_ip, now.mono)
        elif self.sync.has_ingress_rule(dpid, packet.dst_mac) and \
                self.view.is_edge_port(dpid, in_port):
            # The rule exists but the switch's flow cache had not caught up yet (the
            # userspace datapath revalidates asynchronously): deliver this packet anyway.
            sends.append((dpid, openflow.packet_to_table(in_port, data)))
        return sends

    def _arp_in(self, dpid: int, in_port: int, message: ArpIn, now: Now) -> list[Send]:
        sends = self._learn(message.src_mac, message.src_ip, dpid, in_port, now)
        if message.opcode != ARP_REQUEST or message.src_ip == message.dst_ip:
            return sends
        asker = (dpid, in_port, message.src_mac, message.src_ip)
        target = self.view.host_by_ip(message.dst_ip)
        if target is None:
            self.hosts.wait_for(message.dst_ip, asker)
            return sends + self.hosts.probe(message.dst_ip, now.mono)
        return sends + self.fence.after([self.hosts.answer(target, asker)])

    def _learn(self, mac: str, ip: str, dpid: int, port: int, now: Now) -> list[Send]:
        """A new or moved host: its rules everywhere, a fence, then the answers waiting."""
        host = self.hosts.learn(mac, ip, dpid, port)
        if host is None:
            return []
        sends = self._sync_all() + self.fence.raise_on(sorted(self.sync.ready), now.mono)
        for asker in self.hosts.askers(ip):
            sends += self.fence.after([self.hosts.answer(host, asker)])
        return sends
