"""Prometheus metrics of one controller (its own registry, so tests and apps don't collide).

Named as Prometheus asks: base units in the name (``_seconds``, ``_bytes_per_second``,
``_ratio`` for utilizations, which may exceed 1), ``_total`` counters, ``_seconds``
histograms, booleans as 0/1 gauges. Labels stay bounded: per link (``src``, ``dst``), per
policy, source, mode or kind of health finding; per OD pair (N² series) only when asked for
(``metrics_od_pairs``). ``monitoring/`` holds the scrape configuration, the alerting rules
and the Grafana dashboard that use them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controller.decisions import FINDING_KINDS, Mode, finding_kind

if TYPE_CHECKING:
    from controller.decisions import DecisionRecord
    from sim.state import NetworkState

# In the classic text format a counter's creation time would be one more gauge per series
# (``..._created``), which no rule or dashboard reads.
disable_created_metrics()

SOURCES = ("fallback", "agent", "agent-held", "blend", "external")
"""The sources of an installed decision (``DecisionRecord.source``)."""
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
BYTES_PER_MBIT = 1e6 / 8


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, poll_interval_s: float = 5.0, capacity_scale: float = 1.0,
                 od_pairs: bool = False) -> None:
        self.capacity_scale, self.od_pairs = capacity_scale, od_pairs
        self.registry = registry = CollectorRegistry()
        self.mlu = Gauge("ryute_mlu_ratio", "Measured maximum link utilization (load over "
                         "capacity of the busiest link)", registry=registry)
        self.predicted_mlu = Gauge("ryute_predicted_mlu_ratio", "Predicted MLU of each "
                                   "policy's last decision on the latest measured matrix",
                                   ["policy"], registry=registry)
        self.link_utilization = Gauge("ryute_link_utilization_ratio",
                                      "Measured utilization per directed link",
                                      ["src", "dst"], registry=registry)
        self.link_up = Gauge("ryute_link_up", "1 while the directed link is up",
                             ["src", "dst"], registry=registry)
        self.od_demand = Gauge("ryute_od_demand_bytes_per_second", "Measured demand per OD "
                               "pair (only with metrics_od_pairs)", ["src", "dst"],
                               registry=registry)
        self.decisions = Counter("ryute_decisions", "Decisions installed, by source",
                                 ["source"], registry=registry)
        self.health_transitions = Counter("ryute_health_transitions", "Agent trust changes",
                                          ["to"], registry=registry)
        self.agent_trusted = Gauge("ryute_agent_trusted", "1 while the agent is trusted",
                                   registry=registry)
        self.untrusted_decisions = Gauge(
            "ryute_agent_untrusted_decisions", "Consecutive decisions the loaded agent has "
            "been untrusted (0 while trusted or without a model)", registry=registry)
        self.finding = Gauge("ryute_agent_finding", "1 while the last decision had a health "
                             "finding of this kind", ["kind"], registry=registry)
        self.findings = Counter("ryute_agent_findings", "Decisions with a health finding of "
                                "this kind", ["kind"], registry=registry)
        self.mode = Gauge("ryute_mode", "1 for the current mode", ["mode"], registry=registry)
        self.mode_changes = Counter("ryute_mode_changes", "Mode changes asked for through the "
                                    "API (and rollbacks)", ["to"], registry=registry)
        self.last_statistics = Gauge("ryute_last_statistics_timestamp_seconds",
                                     "When the last statistics interval closed (Unix time; 0: "
                                     "none yet)", registry=registry)
        self.poll_interval = Gauge("ryute_poll_interval_seconds", "The statistics interval",
                                   registry=registry)
        self.poll_interval.set(poll_interval_s)
        self.switches_connected = Gauge("ryute_switches_connected", "Switches connected",
                                        registry=registry)
        self.switches_expected = Gauge("ryute_switches_expected", "Switches of the topology "
                                       "file (0 without one)", registry=registry)
        self.decision_latency = Histogram(
            "ryute_decision_latency_seconds", "Statistics in to group modifications sent",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.agent_latency = Histogram("ryute_agent_inference_seconds",
                                       "Agent decision time", buckets=LATENCY_BUCKETS,
                                       registry=registry)
        # Every bounded label value exported from the start, at 0 (a series that appears
        # only with its first event breaks rate() and alerts on it).
        for kind in FINDING_KINDS:
            self.finding.labels(kind).set(0)
            self.findings.labels(kind)
        for source in SOURCES:
            self.decisions.labels(source)
        for change in ("trusted", "untrusted"):
            self.health_transitions.labels(change)
        for mode in Mode:
            self.mode_changes.labels(mode.value)
        self._untrusted = 0

    def watch_switches(self, connected: Callable[[], int], expected: int) -> None:
        """Read the number of connected switches at every scrape."""
        self.switches_connected.set_function(lambda: float(connected()))
        self.switches_expected.set(expected)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def interval(self, state: NetworkState) -> None:
        """A closed statistics interval: measured MLU, utilization and state per link."""
        self.mlu.set(state.mlu)
        if state.updated_at is not None:
            self.last_statistics.set(state.updated_at)
        for (u, v), value in zip(state.path_set.edges, state.utilization):
            self.link_utilization.labels(str(u), str(v)).set(float(value))
            self.link_up.labels(str(u), str(v)).set(0.0 if (u, v) in state.down_links else 1.0)
        if self.od_pairs and state.last_matrix is not None:
            matrix, nodes = state.last_matrix, state.path_set.nodes
            index = {node: i for i, node in enumerate(nodes)}
            scale = BYTES_PER_MBIT / self.capacity_scale
            for src, dst in state.path_set.od_pairs:
                self.od_demand.labels(str(src), str(dst)).set(
                    float(matrix[index[src], index[dst]]) * scale)

    def decision(self, record: DecisionRecord, latency_s: float) -> None:
        """One decision installed (``record``: its ``DecisionRecord``)."""
        self.decision_latency.observe(latency_s)
        self.decisions.labels(record.source).inc()
        for policy, value in record.predicted_mlu.items():
            if value is not None:
                self.predicted_mlu.labels(policy).set(value)
        if record.decision_ms["agent"] is not None:
            self.agent_latency.observe(record.decision_ms["agent"] / 1000)
        self.agent_trusted.set(1.0 if record.trusted else 0.0)
        has_agent = record.model is not None and record.mode != Mode.EXTERNAL.value
        self._untrusted = self._untrusted + 1 if has_agent and not record.trusted else 0
        self.untrusted_decisions.set(self._untrusted)
        kinds = {finding_kind(reason) for reason in record.reasons} if has_agent else set()
        for kind in FINDING_KINDS:
            self.finding.labels(kind).set(1.0 if kind in kinds else 0.0)
            if kind in kinds:
                self.findings.labels(kind).inc()
        for mode in Mode:
            self.mode.labels(mode.value).set(1.0 if record.mode == mode.value else 0.0)
        for change in record.mode_changes or []:
            self.mode_changes.labels(change["to"]).inc()
        if record.transition:
            self.health_transitions.labels(record.transition).inc()
