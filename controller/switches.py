"""What the switches hold, as plain objects that return the OpenFlow messages to send.

- :class:`SwitchSync`: the rules and groups installed on every reconciled switch, and the
  differences that make a switch hold what ``controller.pipeline`` says it should.
- :class:`Reconciler`: a (re)connected switch's own rules and groups read back before it is
  taken over, so a restarted controller changes only what differs.
- :class:`Fence`: barriers on every switch, and what has to wait until all have answered.

Nothing here talks to a switch or reads a clock: callers pass ``now`` and send what comes back
(``(dpid, message)`` pairs, see ``controller.openflow.Send``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from controller import openflow, pipeline
from controller.openflow import FlowEntry, Send
from sim.decision import Decision

LOG = logging.getLogger("ryute.controller")
FENCE_TIMEOUT_S = 2.0
"""A switch that never answers a barrier must not hold ARP answers longer than this."""


class SwitchSync:
    """Installed state per switch (``None``: found on the switch, content unknown) and diffing.

    Only switches in ``ready`` (reconciled) are synchronized. Label rules and groups are
    computed once per topology version and link ports (groups: per decision), not per switch.
    """

    def __init__(self, cookie: int) -> None:
        self.cookie = cookie
        self.ready: set[int] = set()
        self.flows: dict[int, dict[tuple, pipeline.Flow | None]] = {}
        self.groups: dict[int, dict[int, pipeline.Group | None]] = {}
        self._repair_cache: tuple[object, pipeline.Repair] = (None, pipeline.Repair())
        self._label_cache: tuple[object, dict] = (None, {})
        self._group_cache: tuple[object, object, dict] = (None, None, {})

    def adopt(self, dpid: int, flow_keys: Iterable[tuple], group_ids: Iterable[int],
              base: list[pipeline.Flow]) -> None:
        """Take over a switch whose own rules and groups were read back (``base``: sent at
        connection). Unknown content differs from every desired rule: each is re-added in
        place, which replaces it atomically; keys no longer wanted are deleted."""
        installed: dict[tuple, pipeline.Flow | None] = dict.fromkeys(flow_keys)
        installed.update({rule.key: rule for rule in base})
        self.flows[dpid] = installed
        self.groups[dpid] = dict.fromkeys(group_ids)
        self.ready.add(dpid)

    def drop(self, dpid: int) -> None:
        """Disconnected or reconnecting: not synchronized until reconciled again."""
        self.ready.discard(dpid)

    def has_ingress_rule(self, dpid: int, mac: str) -> bool:
        return any(key[0] == pipeline.TABLE_INGRESS and ("eth_dst", mac) in key[2]
                   for key in self.flows.get(dpid, {}))

    @staticmethod
    def _fabric_key(fabric: pipeline.Fabric, version: int) -> tuple:
        return version, fabric.local_repair, tuple(sorted(fabric.link_ports.items()))

    def repair(self, fabric: pipeline.Fabric, version: int) -> pipeline.Repair:
        """Failover groups and detour tunnels, recomputed only when the paths or their ports
        change."""
        key = self._fabric_key(fabric, version)
        if self._repair_cache[0] != key:
            self._repair_cache = (key, pipeline.local_repair(fabric))
        return self._repair_cache[1]

    def label_rules(self, fabric: pipeline.Fabric, version: int) -> dict[int, list[pipeline.Flow]]:
        """Label rules per switch, recomputed only when the paths or their ports change."""
        key = self._fabric_key(fabric, version)
        if self._label_cache[0] != key:
            self._label_cache = (key, pipeline.label_flows_by_switch(
                fabric, self.repair(fabric, version)))
        return self._label_cache[1]

    def desired_groups(self, fabric: pipeline.Fabric | None, version: int,
                       decision: Decision | None) -> dict[int, dict[int, pipeline.Group]]:
        """Every switch's groups for ``decision``, computed once (cached per decision)."""
        if fabric is None or decision is None:
            return {}
        key = self._fabric_key(fabric, version)
        cached_decision, cached_key, groups = self._group_cache
        if cached_decision is not decision or cached_key != key:
            groups = pipeline.groups_by_switch(fabric, decision, self.repair(fabric, version))
            self._group_cache = (decision, key, groups)
        return groups

    def install(self, fabric: pipeline.Fabric | None, version: int,
                decision: Decision) -> list[Send]:
        """New weights: one group modification per changed OD pair, nothing else."""
        groups = self.desired_groups(fabric, version, decision)
        return [send for dpid in sorted(self.ready)
                for send in self.group_messages(dpid, groups.get(dpid, {}))]

    def sync_all(self, fabric: pipeline.Fabric | None, version: int,
                 decision: Decision | None) -> list[Send]:
        return [send for dpid in sorted(self.ready)
                for send in self.sync(dpid, fabric, version, decision)]

    def sync(self, dpid: int, fabric: pipeline.Fabric | None, version: int,
             decision: Decision | None) -> list[Send]:
        """Make the switch hold exactly the desired groups and rules: send only differences."""
        groups = self.desired_groups(fabric, version, decision).get(dpid, {})
        sends = self.group_messages(dpid, groups)
        desired = (pipeline.desired_flows(fabric, dpid, self.label_rules(fabric, version))
                   if fabric is not None
                   else {rule.key: rule for rule in pipeline.base_flows()})
        installed = self.flows.setdefault(dpid, {})
        changed = [rule for key, rule in desired.items() if installed.get(key) != rule]
        stale = [key for key in installed if key not in desired]
        sends += [(dpid, openflow.flow_mod(rule, self.cookie)) for rule in changed]
        sends += [(dpid, openflow.flow_delete(key, self.cookie)) for key in stale]
        for rule in changed:
            installed[rule.key] = rule
        for key in stale:
            del installed[key]
        installed_groups = self.groups.setdefault(dpid, {})
        stale_groups = [gid for gid in installed_groups if gid not in groups]
        sends += [(dpid, openflow.group_delete(gid)) for gid in stale_groups]
        for gid in stale_groups:
            del installed_groups[gid]
        return sends

    def group_messages(self, dpid: int, groups: dict[int, pipeline.Group]) -> list[Send]:
        """Add what is missing, modify what moved beyond the tolerance (or is unknown)."""
        installed = self.groups.setdefault(dpid, {})
        sends = []
        for gid, group in groups.items():
            current = installed.get(gid)
            if gid not in installed:
                sends.append((dpid, openflow.group_add(group)))
            elif current is None or not current.same_within(group):
                sends.append((dpid, openflow.group_modify(group)))
            else:
                continue
            installed[gid] = group
        return sends


@dataclass
class Reading:
    """A connected switch's own state, being read back (an xid is None once its reply is in)."""

    flows_xid: int | None
    groups_xid: int | None
    since: float
    base: list[pipeline.Flow]
    flow_keys: set[tuple] = field(default_factory=set)
    group_ids: set[int] = field(default_factory=set)
    hosts: list[tuple[str, int]] = field(default_factory=list)
    """(MAC, port) of the host delivery rules found: hosts known before the restart."""

    @property
    def done(self) -> bool:
        return self.flows_xid is None and self.groups_xid is None


class Reconciler:
    """Restart reconciliation: read back instead of wiping, take over once the links are known."""

    def __init__(self) -> None:
        self.readings: dict[int, Reading] = {}

    def start(self, dpid: int, flows_xid: int, groups_xid: int, base: list[pipeline.Flow],
              now: float) -> None:
        self.readings[dpid] = Reading(flows_xid, groups_xid, now, base)

    def forget(self, dpid: int) -> None:
        self.readings.pop(dpid, None)

    def flows_in(self, dpid: int, xid: int, entries: list[FlowEntry], more: bool) -> bool:
        """A flow statistics reply; True when it answers this switch's reading (consumed)."""
        reading = self.readings.get(dpid)
        if reading is None or xid != reading.flows_xid:
            return False
        reading.flow_keys.update(entry.key for entry in entries)
        reading.hosts += [entry.delivers for entry in entries if entry.delivers is not None]
        if not more:
            reading.flows_xid = None
        return True

    def groups_in(self, dpid: int, xid: int, group_ids: Iterable[int], more: bool) -> bool:
        """A group description reply; True when it answers this switch's reading."""
        reading = self.readings.get(dpid)
        if reading is None or xid != reading.groups_xid:
            return False
        reading.group_ids.update(group_ids)
        if not more:
            reading.groups_xid = None
        return True

    def hosts_found(self) -> list[tuple[int, str, int]]:
        """(dpid, MAC, port) of every host rule read so far, from every switch: a switch
        taken over before the hosts of the others are known would lose its rules towards them."""
        return [(dpid, mac, port) for dpid, reading in self.readings.items()
                if reading.flows_xid is None for mac, port in reading.hosts]

    def take_ready(self, settled: bool, now: float, timeout_s: float) -> list[tuple[int, Reading]]:
        """The switches read completely, once the links are known (``settled``) or after
        ``timeout_s``: until then nothing is changed on them, since a restarted controller
        that knows no links yet would remove the label rules that carry the traffic."""
        ready = [(dpid, reading) for dpid, reading in self.readings.items()
                 if reading.done and (settled or now - reading.since >= timeout_s)]
        for dpid, _ in ready:
            del self.readings[dpid]
        return ready


class Fence:
    """Barriers on every switch: what was sent before is installed once all have answered.

    Each switch has its own send queue, so rules sent to one can arrive after a packet-out
    sent to another; an ARP answer must not let a host send before the rules towards and back
    from its peer are everywhere.
    """

    def __init__(self, next_xid: Callable[[], int], timeout_s: float = FENCE_TIMEOUT_S) -> None:
        self.next_xid = next_xid
        self.timeout_s = timeout_s
        self.outstanding: dict[tuple[int, int], float] = {}  # (dpid, xid) -> since
        self.waiting: list[Send] = []

    def raise_on(self, dpids: Iterable[int], now: float) -> list[Send]:
        sends = []
        for dpid in dpids:
            barrier = openflow.barrier()
            barrier.set_xid(self.next_xid())
            self.outstanding[dpid, barrier.xid] = now
            sends.append((dpid, barrier))
        return sends

    def after(self, sends: list[Send]) -> list[Send]:
        """``sends`` now if no barrier is outstanding, else once all have been answered."""
        if self.outstanding:
            self.waiting += sends
            return []
        return sends

    def lower(self, done: Iterable[tuple[int, int]]) -> list[Send]:
        for key in done:
            self.outstanding.pop(key, None)
        if self.outstanding:
            return []
        released, self.waiting = self.waiting, []
        return released

    def expire(self, now: float) -> list[Send]:
        return self.lower([key for key, since in self.outstanding.items()
                           if now - since > self.timeout_s])

    def drop_switch(self, dpid: int) -> list[Send]:
        return self.lower([key for key in self.outstanding if key[0] == dpid])
