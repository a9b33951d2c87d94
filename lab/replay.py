"""Traffic replay: a traffic series as paced UDP flows between Mininet hosts.

Two halves, one module:

- **The plan** (orchestrator side, numpy): :class:`ReplayPlan` turns a series in the topology's
  units (Mbit/s per OD pair of switches) into per-host schedules. Emulated rates are
  ``demand x traffic_scale / capacity_scale``, counted as the bytes an inter-switch port
  sends: UDP payload + UDP/IPv4/Ethernet headers + the 4-byte MPLS label
  (:data:`WIRE_OVERHEAD`), so that the switches' port counters, which the controller turns
  into link loads, see exactly the planned rate. Each OD demand is spread round-robin over
  ``flows`` UDP flows with distinct source ports (equal bytes per flow), so that the SELECT
  groups' per-flow hashing can realize a split. :func:`choose_traffic_scale` picks the scale
  at which the fallback's (invcap, ECMP ties) predicted MLU sits in [0.5, 0.9].
- **Flows that hash apart.** Open vSwitch's default SELECT-group hash (``dp_hash``,
  ``sym_l4``) covers IP addresses, protocol and TCP/SCTP ports, but *not* UDP ports: UDP
  flows between one pair of addresses all take one bucket, whatever their ports. So flow k
  of a host is sent from its own source address ``10.a.b.(ALIAS_BASE + k)`` (an alias on the
  host's interface), as an OD pair of a real network aggregates many host pairs.
  :func:`host_setup_commands` adds the aliases and static neighbour entries for every other
  host (no ARP from an alias address ever reaches the controller's proxy ARP).
- **The agent** (host side, standard library only, so it starts fast inside a host's
  namespace): ``python -m lab.replay SCHEDULE.json`` runs one paced sender and one receiver
  for one host. It starts at the schedule's wall-clock ``start_at`` (all hosts share the
  machine's clock), sends every destination its cumulative byte budget (never more; at most
  :data:`MAX_BURST_S` of catch-up after a stall, the rest is skipped and reported), labels
  each datagram with the segment it was sent in, counts what it receives per source and
  segment, and writes a JSON report when done.

A schedule is a list of *segments* (segment 0 is the warm-up, segment k >= 1 replays matrix
k - 1), each with a duration and a rate per destination.
"""
from __future__ import annotations

import errno
import json
import os
import select
import socket
import struct
import sys
import time
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UDP_IP_ETH_OVERHEAD = 8 + 20 + 14
"""UDP + IPv4 + Ethernet headers (no FCS: Open vSwitch counts frames without it)."""
MPLS_OVERHEAD = 4
"""The label an inter-switch frame carries (ARCHITECTURE.md, "Forwarding")."""
WIRE_OVERHEAD = UDP_IP_ETH_OVERHEAD + MPLS_OVERHEAD
"""Bytes an inter-switch port counts beyond the UDP payload."""
DEFAULT_PAYLOAD = 1472
"""UDP payload: an IPv4 packet of 1500 bytes, the hosts' MTU."""
MAX_PAYLOAD = 8972
"""A 9000-byte IPv4 packet (jumbo frames: the hosts' and switch ports' MTU must allow it)."""
DEFAULT_FLOWS = 128
"""Flows per OD pair: OVS hashes each flow to one bucket of the SELECT group, so the realized
split follows the weights only with many flows (ring of five, equal split: per-link error up to
19 % with 32 flows, within 8 % with 128; at most 255 - ALIAS_BASE)."""
DEFAULT_PORT = 47000
MAX_BURST_S = 0.2
"""A sender that fell behind (CPU stall) catches up at most this much of its schedule at once."""
LINGER_S = 1.5
"""The receiver keeps counting this long after the last segment (datagrams in flight)."""
ALIAS_BASE = 100
"""Flow k of a host is sent from 10.a.b.(ALIAS_BASE + k); the hosts themselves are 10.a.b.i,
i < ALIAS_BASE."""
MAGIC_BITS = 32
HEADER = struct.Struct("!IHHI")
"""run token, source host index, segment, sequence number."""
MIN_SPLIT_SAMPLES = 50.0
"""Fewer hashed datagrams per OD pair and interval than this (demand-weighted mean, see
:attr:`ReplayPlan.split_samples`) and the realized splits stray from the weights by more than
the hashing of the flows alone makes them (ring of five at 1 Mbit/s links, equal split, 2 s
intervals: 38 samples, per-link error up to 22 %; 4 s intervals: 76 samples, up to 6 %;
``benchmarks.split_realization``)."""
MLU_RANGE = (0.5, 0.9)
MLU_TARGET = 0.85


# -- the plan ------------------------------------------------------------------------------

def choose_traffic_scale(fallback_mlus, low: float = MLU_RANGE[0], high: float = MLU_RANGE[1],
                         target: float = MLU_TARGET) -> float:
    """The factor that puts the fallback's predicted MLU of every matrix in [low, high].

    ``fallback_mlus``: the fallback's predicted MLU of each matrix at scale 1 (MLU is linear
    in the demand, so scaling the matrices scales these).

    The busiest matrix goes to ``target`` (below ``high``: a saturated link caps the measured
    MLU at 1 and hides differences). When the series varies more than [low, high] allows, the
    factor centres it geometrically in the range (some matrices then fall outside).
    """
    import numpy as np

    mlus = np.asarray(fallback_mlus, dtype=np.float64)
    mlus = mlus[mlus > 0]
    if not len(mlus):
        raise ValueError("the replayed matrices carry no traffic between OD pairs")
    top, bottom = float(mlus.max()), float(mlus.min())
    scale = target / top
    if scale * bottom < low:
        scale = float(np.sqrt(low * high / (top * bottom)))
    return scale


@dataclass(frozen=True)
class Host:
    name: str
    ip: str  # without prefix length
    node: str
    mac: str = ""

    def alias(self, flow: int) -> str:
        """The source address of flow ``flow`` of this host."""
        return ".".join(self.ip.split(".")[:3] + [str(ALIAS_BASE + flow)])


@dataclass(frozen=True)
class ReplayPlan:
    """What every host sends, segment by segment.

    ``tm`` [T, N, N] in topology units (Mbit/s), rows and columns in ``nodes`` order;
    ``hosts[i]`` is the host behind node i (None: a node without hosts, its demand is not
    replayed). ``warmup_s`` replays the first matrix before the measured ones (the controller
    then has statistics, and the agent a history, when the first measured interval starts).
    """

    tm: Any
    nodes: tuple[str, ...]
    hosts: tuple[Host | None, ...]
    interval_s: float
    traffic_scale: float
    capacity_scale: float
    warmup_s: float = 0.0
    flows: int = DEFAULT_FLOWS
    payload: int = DEFAULT_PAYLOAD
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        import numpy as np

        tm = np.asarray(self.tm, dtype=np.float64)
        n = len(self.nodes)
        if tm.ndim != 3 or tm.shape[1:] != (n, n):
            raise ValueError(f"tm has shape {tm.shape}, expected (T, {n}, {n})")
        if len(self.hosts) != n:
            raise ValueError(f"{len(self.hosts)} hosts for {n} nodes")
        if not (self.interval_s > 0 and self.traffic_scale >= 0 and self.capacity_scale > 0
                and self.warmup_s >= 0):
            raise ValueError("interval_s and capacity_scale must be > 0, traffic_scale and "
                             "warmup_s >= 0")
        if not 1 <= self.flows <= 255 - ALIAS_BASE:
            raise ValueError(f"flows must be in 1..{255 - ALIAS_BASE}, got {self.flows}")
        if not HEADER.size <= self.payload <= MAX_PAYLOAD:
            raise ValueError(f"payload must be in {HEADER.size}..{MAX_PAYLOAD} bytes, got "
                             f"{self.payload}")
        object.__setattr__(self, "tm", tm)

    @classmethod
    def for_graph(cls, graph, tm, *, interval_s: float, traffic_scale: float,
                  capacity_scale: float, switch_prefix: str = "s", host_prefix: str = "h",
                  **options: Any) -> ReplayPlan:
        """The plan for a catalog graph emulated by ``topologies.mininet`` (first host of every
        switch; nodes in graph order, as ``tm``'s rows)."""
        from topologies.mininet import host_plan

        specs = {spec.dpid: spec for spec in host_plan(graph, 1, switch_prefix, host_prefix)}
        hosts = []
        for node, dpid in graph.nodes(data="dpid"):
            spec = specs.get(dpid)
            hosts.append(Host(spec.name, spec.ip.split("/")[0], str(node), spec.mac)
                         if spec else None)
        return cls(tm, tuple(str(n) for n in graph.nodes), tuple(hosts), interval_s,
                   traffic_scale, capacity_scale, **options)

    @property
    def n_intervals(self) -> int:
        return self.tm.shape[0]

    @property
    def wire_bytes(self) -> int:
        """Bytes one datagram occupies on an inter-switch link."""
        return self.payload + WIRE_OVERHEAD

    @property
    def offered_tm(self) -> Any:
        """[T, N, N] the replayed demand in topology units (the series x traffic scale),
        only between nodes with hosts."""
        import numpy as np

        has = np.array([h is not None for h in self.hosts])
        return self.tm * self.traffic_scale * np.outer(has, has)

    @property
    def rates_mbps(self) -> Any:
        """[T, N, N] emulated rates, Mbit/s on the wire of an inter-switch link."""
        return self.offered_tm / self.capacity_scale

    @property
    def split_samples(self) -> float:
        """How many independent draws realize an OD pair's split in an interval: the datagrams
        it sends then, at most its flows (a flow is hashed once); demand-weighted mean over OD
        pairs and intervals (inf without demand). An equal split over two paths strays from
        50 % by about ``50 / sqrt(split_samples)`` percent of the demand."""
        import numpy as np

        rates = self.rates_mbps
        total = float(rates.sum())
        if not total:
            return float("inf")
        datagrams = rates * 1e6 / 8 / self.wire_bytes * self.interval_s
        return float((np.minimum(datagrams, self.flows) * rates).sum() / total)

    @property
    def segments_s(self) -> list[float]:
        """Duration of every segment: the warm-up, then one per matrix."""
        return [self.warmup_s] + [self.interval_s] * self.n_intervals

    def segment_rates(self) -> Any:
        """[S, N, N] rates per segment (the warm-up replays the first matrix)."""
        import numpy as np

        rates = self.rates_mbps
        return np.concatenate([rates[:1], rates])

    def schedule(self, src: int, *, start_at: float, token: int, report: str | Path) -> dict:
        """The schedule file of the host behind node ``src`` (JSON-ready)."""
        host = self.hosts[src]
        if host is None:
            raise ValueError(f"node {self.nodes[src]} has no host")
        rates = self.segment_rates()
        destinations = [{"index": dst, "ip": other.ip, "name": other.name,
                         "rates_mbps": [round(float(r), 6) for r in rates[:, src, dst]]}
                        for dst, other in enumerate(self.hosts)
                        if other is not None and dst != src and rates[:, src, dst].any()]
        return {"host": host.name, "index": src, "token": int(token) % (1 << MAGIC_BITS),
                "sources": [host.alias(k) for k in range(self.flows)],
                "start_at": float(start_at), "segments_s": self.segments_s,
                "payload": self.payload, "wire_overhead": WIRE_OVERHEAD, "flows": self.flows,
                "port": self.port, "destinations": destinations, "report": str(report),
                "linger_s": LINGER_S, "max_burst_s": MAX_BURST_S}

    def host_setup_commands(self, src: int, interface: str) -> list[str]:
        """Shell commands preparing the host behind node ``src`` for the replay: the flows'
        source addresses, and a permanent neighbour entry for every other host."""
        host = self.hosts[src]
        assert host is not None, f"node {src} has no host: no traffic to replay from it"
        commands = [f"ip addr replace {host.alias(k)}/32 dev {interface}"
                    for k in range(self.flows)]
        commands += [f"ip neigh replace {other.ip} lladdr {other.mac} nud permanent "
                     f"dev {interface}" for i, other in enumerate(self.hosts)
                     if other is not None and i != src and other.mac]
        return commands

    def write_schedules(self, folder: str | Path, *, start_at: float,
                        token: int) -> dict[str, Path]:
        """One schedule file per host in ``folder``; returns {host name: schedule path}."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for src, host in enumerate(self.hosts):
            if host is None:
                continue
            path = folder / f"{host.name}.schedule.json"
            report = folder / f"{host.name}.report.json"
            report.unlink(missing_ok=True)
            path.write_text(json.dumps(self.schedule(src, start_at=start_at, token=token,
                                                     report=report)))
            files[host.name] = path
        return files

    def planned_bytes(self) -> Any:
        """[S, N, N] bytes each sender should send per segment."""
        import numpy as np

        return self.segment_rates() * 1e6 / 8 * np.array(self.segments_s)[:, None, None]


@dataclass
class ReplayCounts:
    """What the senders sent and the receivers got, [S, N, N] per segment, source, destination."""

    sent_packets: Any
    sent_bytes: Any
    received_packets: Any
    received_bytes: Any
    skipped_bytes: Any
    send_errors: int
    late_start_s: float
    max_lag_s: float
    missing_reports: list[str]


def collect_reports(plan: ReplayPlan, reports: Sequence[dict]) -> ReplayCounts:
    """Join the hosts' reports into per-segment matrices (wire bytes, as in the plan)."""
    import numpy as np

    shape = (len(plan.segments_s), len(plan.nodes), len(plan.nodes))
    counts = {name: np.zeros(shape) for name in
              ("sent_packets", "sent_bytes", "received_packets", "received_bytes",
               "skipped_bytes")}
    errors, late, lag = 0, 0.0, 0.0
    seen = set()
    for report in reports:
        src = report["index"]
        seen.add(src)
        for dst, segment, packets, nbytes in report["sent"]:
            counts["sent_packets"][segment, src, dst] += packets
            counts["sent_bytes"][segment, src, dst] += nbytes
        for dst, segment, nbytes in report["skipped"]:
            counts["skipped_bytes"][segment, src, dst] += nbytes
        for origin, segment, packets, nbytes in report["received"]:
            if 0 <= segment < shape[0] and 0 <= origin < shape[1]:
                counts["received_packets"][segment, origin, src] += packets
                counts["received_bytes"][segment, origin, src] += nbytes
        errors += report["send_errors"]
        late = max(late, report["ready_at"] - report["start_at"])
        lag = max(lag, report["max_lag_s"])
    missing = [h.name for i, h in enumerate(plan.hosts) if h is not None and i not in seen]
    return ReplayCounts(**counts, send_errors=errors, late_start_s=max(0.0, late),
                        max_lag_s=lag, missing_reports=missing)


def interval_summary(plan: ReplayPlan, counts: ReplayCounts, interval: int) -> dict[str, Any]:
    """Offered-load error, loss and delivered throughput of matrix ``interval``.

    Offered-load error: what the senders sent against the plan, in wire bytes: total
    (``offered_error``, signed) and the median absolute error over the OD pairs that should
    carry at least 20 datagrams in the interval (``offered_error_od_median``).
    """
    import numpy as np

    segment = interval + 1
    planned = plan.planned_bytes()[segment]
    sent = counts.sent_bytes[segment]
    received = counts.received_bytes[segment]
    big = planned >= 20 * plan.wire_bytes
    od_errors = np.abs(sent[big] - planned[big]) / planned[big]
    sent_packets = counts.sent_packets[segment].sum()
    duration = plan.segments_s[segment]
    return {
        "planned_mbps": _mbps(planned.sum(), duration),
        "sent_mbps": _mbps(sent.sum(), duration),
        "delivered_mbps": _mbps(received.sum(), duration),
        "offered_error": _ratio(sent.sum() - planned.sum(), planned.sum()),
        "offered_error_od_median": float(np.median(od_errors)) if od_errors.size else None,
        "offered_error_od_max": float(od_errors.max()) if od_errors.size else None,
        "loss": _ratio(sent_packets - counts.received_packets[segment].sum(), sent_packets),
        "sent_packets": int(sent_packets),
    }


def _mbps(nbytes: float, seconds: float) -> float:
    return float(nbytes) * 8 / seconds / 1e6


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


# -- the agent: one paced sender and one receiver per host -----------------------------------

class _Destination:
    """Cumulative byte budget of one destination: ``budget(t)`` bytes by time t."""

    def __init__(self, spec: dict, starts: list[float], durations: list[float]) -> None:
        self.index, self.ip = spec["index"], spec["ip"]
        self.rates = [r * 1e6 / 8 for r in spec["rates_mbps"]]  # bytes/s
        self.starts = starts
        self.cumulative = [0.0]
        for rate, duration in zip(self.rates, durations):
            self.cumulative.append(self.cumulative[-1] + rate * duration)
        self.sent = 0.0  # bytes, cumulative (sent or skipped)
        self.flow = 0

    def budget(self, now: float) -> float:
        k = bisect_right(self.starts, now) - 1
        if k < 0:
            return 0.0
        if k >= len(self.rates):
            return self.cumulative[-1]
        return self.cumulative[k] + self.rates[k] * (now - self.starts[k])

    def due_at(self, nbytes: float) -> float:
        """When the budget reaches ``nbytes`` (inf: never)."""
        k = bisect_right(self.cumulative, nbytes) - 1
        while k < len(self.rates):
            if self.rates[k] > 0 and self.cumulative[k + 1] >= nbytes:
                return self.starts[k] + (nbytes - self.cumulative[k]) / self.rates[k]
            k += 1
        return float("inf")


def run_agent(schedule: dict) -> dict:
    """Send and receive as ``schedule`` says; returns the report (see the module docstring)."""
    durations = [float(d) for d in schedule["segments_s"]]
    start_at = float(schedule["start_at"])
    starts = [start_at]
    for duration in durations:
        starts.append(starts[-1] + duration)
    end_at = starts[-1]
    payload, wire = int(schedule["payload"]), int(schedule["payload"]) + int(
        schedule["wire_overhead"])
    token, me = int(schedule["token"]), int(schedule["index"])
    port, n_flows = int(schedule["port"]), int(schedule["flows"])
    max_burst_s = float(schedule.get("max_burst_s", MAX_BURST_S))

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    receiver.bind(("0.0.0.0", port))
    receiver.setblocking(False)
    senders = []
    sources = schedule.get("sources") or ["0.0.0.0"] * n_flows
    for k in range(n_flows):  # one socket per flow (own source address and port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.bind((sources[k], 0))
        sock.setblocking(False)
        senders.append(sock)
    ready_at = time.time()
    destinations = [_Destination(spec, starts[:-1], durations)
                    for spec in schedule["destinations"]]
    sent: dict[tuple[int, int], list[int]] = {}
    skipped: dict[tuple[int, int], float] = {}
    received: dict[tuple[int, int], list[int]] = {}
    errors = 0
    max_lag = 0.0
    buffer = bytearray(payload)
    seq = 0

    def segment_of(now: float) -> int:
        return min(max(bisect_right(starts, now) - 1, 0), len(durations) - 1)

    def drain() -> None:
        while True:
            try:
                data = receiver.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            if len(data) < HEADER.size:
                continue
            magic, origin, segment, _ = HEADER.unpack_from(data)
            if magic != token:
                continue
            entry = received.setdefault((origin, segment), [0, 0])
            entry[0] += 1
            entry[1] += len(data) + (wire - payload)

    while True:
        now = time.time()
        if now >= end_at:
            break
        segment = segment_of(now)
        stalled = False
        for dest in destinations:
            budget = dest.budget(now)
            behind = budget - dest.sent
            if behind >= wire and dest.rates[segment] > 0:
                limit = max(max_burst_s * dest.rates[segment], wire)
                if behind > limit:  # stalled: catch up MAX_BURST_S at most, skip the rest
                    key = (dest.index, segment)
                    skipped[key] = skipped.get(key, 0.0) + behind - limit
                    dest.sent += behind - limit
                    behind = limit
                lag = behind / dest.rates[segment]
                max_lag = max(max_lag, lag)
            while budget - dest.sent >= wire:
                HEADER.pack_into(buffer, 0, token, me, segment, seq)
                try:
                    senders[dest.flow].sendto(buffer, (dest.ip, port))
                except OSError as error:
                    if error.errno not in (errno.ENOBUFS, errno.EAGAIN, errno.ECONNREFUSED,
                                           errno.EHOSTUNREACH, errno.ENETUNREACH):
                        raise
                    errors += 1
                    stalled = True
                    break  # try again at the next turn
                seq += 1
                dest.sent += wire
                dest.flow = (dest.flow + 1) % n_flows
                entry = sent.setdefault((dest.index, segment), [0, 0])
                entry[0] += 1
                entry[1] += wire
        drain()
        next_due = min((dest.due_at(dest.sent + wire) for dest in destinations),
                       default=end_at)
        wait = min(next_due, end_at) - time.time()
        if stalled:
            wait = max(wait, 0.001)
        if wait > 0:
            select.select([receiver], [], [], min(wait, 0.05))
    linger_until = end_at + float(schedule.get("linger_s", LINGER_S))
    while (wait := linger_until - time.time()) > 0:
        select.select([receiver], [], [], wait)
        drain()
    for sock in senders:
        sock.close()
    receiver.close()
    return {"host": schedule["host"], "index": me, "start_at": start_at, "ready_at": ready_at,
            "end_at": end_at, "finished_at": time.time(), "send_errors": errors,
            "max_lag_s": max_lag,
            "sent": [[d, s, p, b] for (d, s), (p, b) in sorted(sent.items())],
            "skipped": [[d, s, b] for (d, s), b in sorted(skipped.items())],
            "received": [[o, s, p, b] for (o, s), (p, b) in sorted(received.items())]}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m lab.replay SCHEDULE.json", file=sys.stderr)
        return 2
    schedule = json.loads(Path(argv[0]).read_text())
    report = run_agent(schedule)
    target = Path(schedule["report"])
    partial = target.with_suffix(".part")
    partial.write_text(json.dumps(report))
    os.replace(partial, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
