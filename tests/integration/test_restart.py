"""The controller restarts while traffic flows: the data plane keeps forwarding (fail-mode
secure keeps the rules), and the new controller takes the switches over without cutting
traffic and without leaving duplicate or stale rules or groups behind."""
from __future__ import annotations

import time

import expectations as ex
import pytest

from controller.config import DEFAULT_COOKIE

PING_INTERVAL_S = 0.01


def _snapshot(network) -> dict[str, tuple[dict, dict]]:
    """Per switch: our rules {(table, priority, match): actions} and the groups."""
    return {switch: (network.own_flows(switch, DEFAULT_COOKIE), network.dump_groups(switch))
            for switch in sorted(network.bridges)}


def _differences(before, after) -> list[str]:
    problems = []
    for switch in before:
        flows_before, groups_before = before[switch]
        flows_after, groups_after = after[switch]
        for key in sorted(set(flows_before) | set(flows_after), key=str):
            if flows_before.get(key) != flows_after.get(key):
                problems.append(f"{switch} rule {key}: {flows_before.get(key)!r} -> "
                                f"{flows_after.get(key)!r}")
        for gid in sorted(set(groups_before) | set(groups_after)):
            if groups_before.get(gid) != groups_after.get(gid):
                problems.append(f"{switch} group {gid}: {groups_before.get(gid)} -> "
                                f"{groups_after.get(gid)}")
    return problems


def _wait_until_same(network, before, failure: str) -> None:
    """Wait until every switch holds the rules and groups of ``before`` again, or fail."""
    problems = []

    def same():
        nonlocal problems
        problems = _differences(before, _snapshot(network))
        return not problems

    try:
        network.wait_for(same, timeout_s=30, interval_s=0.5)
    except TimeoutError:
        pytest.fail(failure + ":\n" + "\n".join(problems[:30]))


def _pairs(network, n: int) -> list[tuple[str, str]]:
    """Host pairs across the network: the longest fallback paths, distinct sources."""
    paths = ex.path_set(network)
    decision = ex.fallback(paths)
    ranked = sorted(paths.od_pairs, key=lambda od: -max(
        len(paths.paths[p]) for p in ex.weighted_paths(paths, decision, *od)))
    pairs, sources = [], set()
    for src, dst in ranked:
        if src not in sources and dst not in sources:
            pairs.append((ex.host_of(network, src), ex.host_of(network, dst)))
            sources |= {src, dst}
        if len(pairs) == n:
            break
    return pairs


def test_restart_under_traffic_loses_nothing_and_leaves_the_same_rules(network, measure):
    switches, links = len(network.bridges), network.graph.number_of_edges()
    macs = {host.MAC() for host in network.net.hosts}
    # The state to come back to: stable over a statistics interval.
    before = network.wait_for(
        lambda: (a := _snapshot(network), time.sleep(network.poll_interval_s),
                 a == _snapshot(network))[2] and a, timeout_s=30, interval_s=0)
    assert all(not any(key[0] in ("other", "duplicate") for key in flows)
               for flows, _ in before.values())

    pairs = _pairs(network, 3)
    pings = [network.ping(a, b, count=6000, interval_s=PING_INTERVAL_S) for a, b in pairs]
    time.sleep(1.5)
    started = time.monotonic()
    network.restart_controller()
    back_s = time.monotonic() - started
    network.wait_for(lambda: (s := network.api.status())["switches"] == switches
                     and s["links"] == links, timeout_s=30)
    connected_s = time.monotonic() - started
    # Hosts come back from the switches' delivery rules, not from new traffic.
    network.wait_for(lambda: macs <= {h["mac"] for h in network.api.hosts()["hosts"]},
                     timeout_s=30)
    _wait_until_same(network, before, "rules or groups differ after the restart")
    reconciled_s = time.monotonic() - started
    time.sleep(network.poll_interval_s + 1)  # and they stay so (nothing removed late)
    problems = _differences(before, _snapshot(network))
    assert not problems, "\n".join(problems[:30])
    results = [ping.stop() for ping in pings]

    measure("restart", {"controller_back_s": round(back_s, 2),
                        "switches_connected_s": round(connected_s, 2),
                        "rules_equal_s": round(reconciled_s, 2),
                        "pings": [{"pair": list(pair), "sent": r.count, "lost": len(r.lost),
                                   "longest_gap_ms": round(r.longest_gap_ms, 1)}
                                  for pair, r in zip(pairs, results)]})
    for pair, result in zip(pairs, results):
        assert result.count > (time.monotonic() - started) / PING_INTERVAL_S / 4
        assert not result.lost, (f"{pair[0]} -> {pair[1]}: {len(result.lost)} of "
                                 f"{result.count} echo requests lost (seq {result.lost[:20]}); "
                                 f"see {network.controller_log}")


def test_a_switch_that_comes_back_empty_gets_its_state_reinstalled(network, measure):
    """A switch restarts: it drops the controller and every rule and group, then reconnects."""
    import subprocess

    before = _snapshot(network)
    switch = sorted(network.bridges, key=lambda name: -len(before[name][0]))[0]  # busiest
    target = subprocess.run(["ovs-vsctl", "get-controller", switch], capture_output=True,
                            text=True, check=True).stdout.strip()
    subprocess.run(["ovs-vsctl", "del-controller", switch], check=True)
    network.wait_for(lambda: network.api.status()["switches"] == len(network.bridges) - 1,
                     timeout_s=15)
    for command in ("del-flows", "del-groups"):
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", command, switch], check=True)
    assert not network.own_flows(switch, DEFAULT_COOKIE) and not network.dump_groups(switch)
    started = time.monotonic()
    subprocess.run(["ovs-vsctl", "set-controller", switch, target], check=True)
    _wait_until_same(network, before, f"{switch} did not get its state back")
    measure("switch_reinstalled_s", round(time.monotonic() - started, 2))
    assert network.net.pingAll(timeout=2) == 0
