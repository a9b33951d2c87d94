"""Forwarding on real Open vSwitch in Mininet, with the fallback carrying all traffic.

Every host reaches every other on the first try; TCP between two hosts runs at the shaped
capacity of its path's bottleneck; the SELECT groups on every switch carry exactly the
fallback's weights (computed here from the TE core, not read from the controller); and the
measured OD matrix and link loads match known iperf3 UDP rates.
"""
from __future__ import annotations

import time

import expectations as ex
import numpy as np
import pytest

from lab.testbed import Testbed
from sim.loads import link_loads

UDP_PAYLOAD = 1000
"""Bytes of UDP payload per datagram (iperf3 -l)."""
FRAME_OVERHEAD = 14 + 20 + 8
"""Ethernet + IPv4 + UDP headers: what a switch counts beyond the payload."""
MPLS_OVERHEAD = 4
"""The label every inter-switch frame carries."""


@pytest.fixture(scope="module", params=["abilene", "fat-tree:k=4"])
def network(request):
    """One network at a time (both use bridges s1, s2, ...): Abilene, then a k=4 fat-tree."""
    with Testbed(request.param) as testbed:
        ex.wait_until_ready(testbed)
        yield testbed


def test_every_host_reaches_every_other_on_the_first_try(network, measure):
    # The hosts are not known yet: the controller learns them from this very ping's ARP.
    assert network.api.status()["hosts"] == 0
    loss = network.net.pingAll(timeout=2)
    measure("first_pingall_loss_pct", loss)
    assert loss == 0, f"pingAll lost {loss:.1f} % on the first try; see {network.controller_log}"
    assert network.api.status()["hosts"] == len(network.net.hosts)


def test_groups_carry_exactly_the_fallback_weights(network, measure):
    paths = ex.path_set(network)
    decision = ex.fallback(paths)
    expected = ex.expected_groups(network, paths, decision)
    ex.wait_for_groups(network, expected, timeout_s=15, interval_s=1,
                       failure="groups differ from the fallback decision")
    buckets = sum(len(b) for groups in expected.values() for b in groups.values())
    split = sum(1 for groups in expected.values() for b in groups.values()
                if sum(1 for _, weight, _ in b if weight) > 1)
    measure("groups_checked", sum(len(groups) for groups in expected.values()))
    measure("buckets_checked", buckets)
    measure("ecmp_groups", split)


def test_tcp_runs_at_the_shaped_capacity_of_the_bottleneck(network, measure):
    paths = ex.path_set(network)
    decision = ex.fallback(paths)
    # The OD pair with the longest fallback path: its TCP flow crosses the most switches.
    src, dst = max(paths.od_pairs, key=lambda od: (
        max(len(paths.paths[p]) for p in ex.weighted_paths(paths, decision, *od)),
        -paths.od_index(*od)))
    weighted = ex.weighted_paths(paths, decision, src, dst)
    # One TCP flow takes one bucket of the group; every weighted path is a candidate.
    capacity = min(ex.bottleneck_mbps(paths, p) for p in weighted)
    # "Reaches": the best of up to three short runs, as the userspace datapath shares two
    # cores with everything else on the machine and a busy moment costs a run.
    rates = []
    while len(rates) < 3 and (not rates or max(rates) < 0.85 * capacity):
        result = network.iperf3(ex.host_of(network, src), ex.host_of(network, dst),
                                seconds=4, omit_s=1).result()
        rates.append(result["end"]["sum_received"]["bits_per_second"] / 1e6)
    rate = max(rates)
    measure("tcp", {"src": src, "dst": dst, "hops": len(paths.paths[weighted[0]]) - 1,
                    "bottleneck_mbps": capacity, "goodput_mbps": [round(r, 3) for r in rates],
                    "fraction": round(rate / capacity, 3)})
    assert rate >= 0.85 * capacity, (
        f"TCP {src} -> {dst}: {rate:.2f} Mbit/s, below 85 % of the {capacity:g} Mbit/s "
        "bottleneck")
    assert rate <= 1.02 * capacity, f"{rate:.2f} Mbit/s exceeds the shaped {capacity:g} Mbit/s"


def _shared_link_pairs(paths, decision):
    """Two OD pairs on single paths that share a link, the fastest such couple first."""
    single = ex.single_path_pairs(paths, decision)
    couples = []
    for i, (s1, d1, p1) in enumerate(single):
        links1 = set(paths.links_of(p1))
        for s2, d2, p2 in single[i + 1:]:
            shared = links1 & set(paths.links_of(p2))
            if shared and s1 != s2:
                capacity = min(ex.bottleneck_mbps(paths, p1), ex.bottleneck_mbps(paths, p2))
                couples.append((capacity, len(shared), (s1, d1, p1), (s2, d2, p2)))
    couples.sort(key=lambda c: (-c[0], -c[1]))
    return couples[0]


@pytest.mark.parametrize("network", ["abilene"], indirect=True)
def test_measured_od_matrix_and_link_loads_match_known_udp_rates(network, measure):
    """Two UDP flows at known rates, one link in common, for about three poll intervals."""
    paths = ex.path_set(network)
    decision = ex.fallback(paths)
    capacity, _, flow_a, flow_b = _shared_link_pairs(paths, decision)
    rates = {flow_a: round(0.3 * capacity, 2), flow_b: round(0.2 * capacity, 2)}  # payload
    poll = network.poll_interval_s
    seconds = 5 * poll + 1
    runs = []
    for port, ((src, dst, _), rate) in enumerate(rates.items(), start=5201):
        runs.append(network.iperf3(ex.host_of(network, src), ex.host_of(network, dst),
                                   seconds=seconds, udp_mbps=rate, length=UDP_PAYLOAD,
                                   port=port))
    started = time.time()
    readings = {}
    while time.time() < started + seconds - 0.3:
        before = network.api.status()["last_statistics"]
        traffic, topology = network.api.traffic(), network.api.topology()
        if network.api.status()["last_statistics"] == before and before:
            readings[before] = (traffic, topology)
        time.sleep(0.25)
    results = [run.result() for run in runs]

    # A reading covers the poll interval that ends at its time: keep those entirely within
    # the flows (after one interval of warm-up).
    valid = [reading for at, reading in sorted(readings.items())
             if started + 2 * poll + 0.5 <= at <= started + seconds - 0.2]
    assert len(valid) >= 2, f"only {len(valid)} statistics intervals inside the flows"

    nodes = valid[0][0]["nodes"]
    index = {node: i for i, node in enumerate(nodes)}
    frame = (UDP_PAYLOAD + FRAME_OVERHEAD) / UDP_PAYLOAD
    labelled = (UDP_PAYLOAD + FRAME_OVERHEAD + MPLS_OVERHEAD) / UDP_PAYLOAD
    tm = np.zeros((len(nodes), len(nodes)))
    for (src, dst, _), rate in rates.items():
        tm[index[src], index[dst]] = rate
    expected_od = tm * frame
    expected_loads = dict(zip(paths.edges, link_loads(paths, decision, tm * labelled)))

    od = np.median([np.array(traffic["od_mbps"]) for traffic, _ in valid], axis=0)
    loads = {}
    for _, topology in valid:
        for link in topology["graph_links"]:
            loads.setdefault((link["src"], link["dst"]), []).append(link["load_mbps"])
    loads = {edge: float(np.median(values)) for edge, values in loads.items()}

    sent = [r["end"]["sum"]["bits_per_second"] / 1e6 for r in results]
    measure("udp_flows", [{"src": s, "dst": d, "rate_mbps": r, "iperf3_mbps": round(m, 3),
                           "measured_od_mbps": round(float(od[index[s], index[d]]), 3)}
                          for ((s, d, _), r), m in zip(rates.items(), sent)])
    problems = []
    for i, j in np.ndindex(od.shape):
        want, have = expected_od[i, j], od[i, j]
        if abs(have - want) > 0.1 * want + 0.02:
            problems.append(f"OD {nodes[i]} -> {nodes[j]}: measured {have:.3f}, "
                            f"expected {want:.3f} Mbit/s")
    loaded = 0
    for edge, want in expected_loads.items():
        have = loads[edge]
        loaded += want > 0
        if abs(have - want) > 0.1 * want + 0.02:
            problems.append(f"link {edge[0]} -> {edge[1]}: measured {have:.3f}, "
                            f"expected {want:.3f} Mbit/s")
    assert loaded >= 2
    shared = [edge for edge in expected_loads
              if edge in paths.links_of(flow_a[2]) and edge in paths.links_of(flow_b[2])]
    measure("shared_link_load", {"link": list(shared[0]),
                                 "expected_mbps": round(float(expected_loads[shared[0]]), 3),
                                 "measured_mbps": round(loads[shared[0]], 3)})
    assert not problems, "\n".join(problems)
