"""Prometheus metrics of one controller (its own registry, so tests and apps don't collide)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from controller.decisions import DecisionRecord
    from sim.state import NetworkState

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.mlu = Gauge("ryute_mlu", "Measured maximum link utilization", registry=registry)
        self.predicted_mlu = Gauge("ryute_predicted_mlu", "Predicted MLU of the last decision "
                                   "on the latest measured matrix", ["policy"], registry=registry)
        self.link_utilization = Gauge("ryute_link_utilization", "Measured utilization per link",
                                      ["src", "dst"], registry=registry)
        self.decisions = Counter("ryute_decisions", "Decisions installed, by source",
                                 ["source"], registry=registry)
        self.health_transitions = Counter("ryute_health_transitions", "Agent trust changes",
                                          ["to"], registry=registry)
        self.agent_trusted = Gauge("ryute_agent_trusted", "1 while the agent is trusted",
                                   registry=registry)
        self.decision_latency = Histogram(
            "ryute_decision_latency_seconds", "Statistics in to group modifications sent",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.agent_latency = Histogram("ryute_agent_inference_seconds",
                                       "Agent decision time", buckets=LATENCY_BUCKETS,
                                       registry=registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def interval(self, state: NetworkState) -> None:
        """A closed statistics interval: measured MLU and utilization per link."""
        self.mlu.set(state.mlu)
        for (u, v), value in zip(state.path_set.edges, state.utilization):
            self.link_utilization.labels(str(u), str(v)).set(float(value))

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
        if record.transition:
            self.health_transitions.labels(record.transition).inc()
