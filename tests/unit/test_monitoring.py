"""Prometheus and Grafana: metric names by Prometheus's conventions, the alerting rules checked
and unit-tested with ``promtool``, a real Prometheus server (Debian's ``prometheus``) scraping
the real app over HTTP until an alert fires, and the Grafana dashboard's JSON (schema, and every
query's metric exists). The app runs without switches; statistics intervals are fed to it
(``benchmarks.dashboard.feed_interval``)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_decision_loop import Agent

from benchmarks.dashboard import feed_interval, live_app, series_for, serve

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
PROMTOOL, PROMETHEUS = shutil.which("promtool"), shutil.which("prometheus")
NO_PROMETHEUS = ("Prometheus test skipped: Debian's prometheus package is not installed "
                 "(scripts/setup.sh system installs it)")


@pytest.fixture(scope="module")
def exposition():
    """The metrics of an app with an agent after a few intervals, one link down, and
    ``metrics_od_pairs``."""
    app = live_app("abilene", None, metrics_od_pairs=True)
    app.plane.loop.set_agent(Agent("uniform"), "test-model")
    app.plane.view.state.set_link_up("ATLAng", "HSTNng", False)
    for matrix in series_for(app, 4):
        feed_interval(app, matrix)
    return app, app.plane.metrics.exposition().decode()


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metric_names_follow_prometheus_conventions(exposition):
    _, text = exposition
    found = families(text)
    for name, family in found.items():
        assert name.startswith("ryute_"), name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), name
        if family.type == "histogram":
            assert name.endswith("_seconds"), name
        if family.type == "gauge" and family.documentation:
            unitless = ("ryute_agent_trusted", "ryute_link_up", "ryute_mode",
                        "ryute_agent_finding", "ryute_agent_untrusted_decisions",
                        "ryute_switches_connected", "ryute_switches_expected")
            assert name in unitless or name.endswith(
                ("_ratio", "_seconds", "_bytes_per_second")), name
    labels = {name: {key for s in family.samples for key in s.labels if key != "le"}
              for name, family in found.items()}
    assert labels["ryute_link_utilization_ratio"] == {"src", "dst"}
    per_pair = [name for name, keys in labels.items() if {"src", "dst"} <= keys]
    assert sorted(per_pair) == ["ryute_link_up", "ryute_link_utilization_ratio",
                                "ryute_od_demand_bytes_per_second"]


def test_metrics_say_what_the_controller_knows(exposition):
    app, text = exposition
    state = app.plane.view.state
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in families(text).values() for s in family.samples}
    assert samples["ryute_mlu_ratio", ()] == pytest.approx(state.mlu)
    assert samples["ryute_link_up", (("dst", "HSTNng"), ("src", "ATLAng"))] == 0
    assert samples["ryute_link_up", (("dst", "ATLAng"), ("src", "HSTNng"))] == 1
    assert samples["ryute_switches_expected", ()] == 12
    assert samples["ryute_switches_connected", ()] == 0
    assert samples["ryute_poll_interval_seconds", ()] == 5
    assert samples["ryute_last_statistics_timestamp_seconds", ()] == state.updated_at
    assert samples["ryute_mode", (("mode", "shadow"),)] == 1
    assert samples["ryute_agent_untrusted_decisions", ()] == 4  # a uniform split: untrusted
    assert samples["ryute_agent_finding", (("kind", "worse"),)] == 1
    assert samples["ryute_agent_finding", (("kind", "drift"),)] == 0
    index = {node: i for i, node in enumerate(state.path_set.nodes)}
    demand = samples["ryute_od_demand_bytes_per_second", (("dst", "NYCMng"), ("src", "LOSAng"))]
    assert demand == pytest.approx(state.last_matrix[index["LOSAng"], index["NYCMng"]] * 1e6 / 8)
    assert sum(1 for name, _ in samples if name == "ryute_od_demand_bytes_per_second") == 132


def test_od_pair_series_only_on_request():
    app = live_app("abilene", None)
    feed_interval(app, series_for(app, 1)[0])
    assert "ryute_od_demand_bytes_per_second{" not in app.plane.metrics.exposition().decode()


def test_every_health_reason_has_a_bounded_kind():
    from controller.decisions import FINDING_KINDS, finding_kind

    reasons = {
        "statistics older than 3 intervals": "stale",
        "input drift: total demand 1e+05 Mbit/s is outside [1/10, 10] x ...": "drift",
        "malformed decision: weight on down link A->B": "malformed",
        "predicted MLU 0.900 worse than the fallback's 0.500 by more than 10% and 0.02": "worse",
        "decision slower than the 50 ms budget": "late",
        "previous agent decision still running": "busy",
        "agent raised RuntimeError: boom": "raised",
        "3 transient faults in a row (limit 3)": "transient_limit",
        "something new": "other"}
    assert {reason: finding_kind(reason) for reason in reasons} == reasons
    assert set(reasons.values()) == set(FINDING_KINDS)


def metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bryute_[a-z_]+", text))


def exported(text: str) -> set[str]:
    return {s.name for family in families(text).values() for s in family.samples}


def test_every_metric_the_rules_and_the_dashboard_query_exists(exposition):
    _, text = exposition
    names = exported(text)
    rules = metric_names((MONITORING / "ryute-alerts.yml").read_text())
    dashboard = (MONITORING / "grafana-dashboard.json").read_text()
    used = rules | metric_names(dashboard)
    assert len(used) >= 15
    assert used - names == set()


def test_the_grafana_dashboard_imports():
    """What Grafana's import checks, and what this dashboard promises: a schema version
    Grafana 10 and 11 read, a Prometheus datasource variable every query uses, and the panels
    of the issue (MLU, per-link heatmap, decisions by source, health transitions, latency,
    agent vs fallback predicted MLU)."""
    document = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert 36 <= document["schemaVersion"] <= 41
    assert document["uid"] == "ryute-te" and document["title"]
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = document["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat", "heatmap"}, panel["title"]
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and \
            panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["expr"] and t["refId"] and t["datasource"] ==
                                        panel["datasource"] for t in panel["targets"])
    titles = {p["title"]: p for p in panels}
    assert titles["Per-link utilization"]["type"] == "heatmap"
    for title in ("MLU: measured and predicted", "Decisions by source", "Decision latency",
                  "Health transitions and findings", "Agent vs fallback predicted MLU"):
        assert title in titles


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMETHEUS)
def test_promtool_checks_and_tests_the_alerting_rules():
    for command in (["check", "rules", "ryute-alerts.yml"],
                    ["test", "rules", "ryute-alerts.test.yml"],
                    ["check", "config", "prometheus.yml"]):
        result = subprocess.run([PROMTOOL, *command], cwd=MONITORING, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (MONITORING / "ryute-alerts.test.yml")
                            .read_text()))
    defined = set(re.findall(r"- alert: (\w+)", (MONITORING / "ryute-alerts.yml").read_text()))
    assert tested == defined, "every alert has a test"


def query(prometheus: str, promql: str) -> list[dict]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())["data"]["result"]


def ready(prometheus: str) -> bool:
    try:
        with urllib.request.urlopen(f"{prometheus}/-/ready", timeout=5) as response:
            return response.status == 200
    except OSError:  # not listening yet
        return False


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout_s} s: {what}")


@pytest.mark.skipif(PROMETHEUS is None, reason=NO_PROMETHEUS)
def test_a_real_prometheus_scrapes_the_controller_and_alerts_on_an_unhealthy_agent(tmp_path):
    from conftest import free_port

    app = live_app("abilene", None)
    agent = Agent("optimal")
    app.plane.loop.set_agent(agent, "test-model")
    series = series_for(app, 40)
    for matrix in series[:4]:
        feed_interval(app, matrix)
    assert app.plane.loop.health.trusted
    server, url = serve(app)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "ryute-alerts.yml")],
        "scrape_configs": [{"job_name": "ryute", "static_configs": [
            {"targets": [url.removeprefix("http://")]}]}]}))
    log = open(tmp_path / "prometheus.log", "wb")
    process = subprocess.Popen([PROMETHEUS, f"--config.file={config}",
                                f"--storage.tsdb.path={tmp_path / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT)
    prometheus = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: ready(prometheus), 30, "Prometheus ready")
        wait_for(lambda: query(prometheus, 'up{job="ryute"} == 1'), 30, "a scrape")
        links = query(prometheus, "ryute_link_utilization_ratio")
        assert len(links) == 30 and {r["metric"]["job"] for r in links} == {"ryute"}
        mlu = query(prometheus, "ryute_mlu_ratio")
        assert float(mlu[0]["value"][1]) == pytest.approx(app.plane.view.state.mlu, rel=1e-6)
        assert query(prometheus, "ryute_agent_trusted")[0]["value"][1] == "1"
        agent.behaviour = "uniform"  # a split that loads the busiest links: untrusted
        for matrix in series[4:16]:
            feed_interval(app, matrix)
        assert "ryute_agent_untrusted_decisions 12.0" in app.plane.metrics.exposition().decode()

        def untrusted_alert():
            with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=10) as response:
                alerts = json.loads(response.read())["data"]["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "RyuteAgentUntrusted"
                    and a["state"] == "firing"]

        (alert,) = wait_for(untrusted_alert, 30, "RyuteAgentUntrusted firing")
        assert alert["annotations"]["summary"].endswith("untrusted for 12 decisions")
        finding = query(prometheus, 'ryute_agent_finding{kind="worse"} == 1')
        assert len(finding) == 1
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        server.shutdown()
