"""Bad input is reported, never fatal.

A topology file that disagrees with the network the controller finds (a link it lacks, a link
it does not know, a switch it does not know) is reported under ``mismatch`` while the
controller keeps answering and the hosts on known switches keep reaching each other; a
malformed frame a host sends to the controller is ignored and logged.
"""
from __future__ import annotations

import time

import expectations as ex
import pytest

from lab.testbed import Testbed


def _names(links) -> list[list[str]]:
    return sorted([u, v] for u, v in links)


@pytest.mark.parametrize("emulated, told", [
    ("ring:n=4", "linear:n=4"),    # the network has a link the file lacks
    ("linear:n=4", "ring:n=4"),    # the file has a link the network lacks
    ("linear:n=5", "linear:n=4"),  # the network has a switch (and a link) the file lacks
])
def test_a_topology_file_that_disagrees_is_reported_not_fatal(emulated, told, measure):
    with Testbed(emulated, controller_topology=told) as network:
        network_graph, file_graph = network.graph, ex.controller_graph(network)
        missing = set(file_graph.edges) - set(network_graph.edges)
        unexpected = set(network_graph.edges) - set(file_graph.edges)
        unknown = sorted(data["dpid"] for node, data in network_graph.nodes(data=True)
                         if node not in file_graph)
        want = {"missing_links": _names(missing), "unexpected_links": _names(unexpected),
                "missing_switches": [], "unknown_switches": unknown}

        def reported():
            status = network.api.status()
            view = network.api.topology()
            return (status["switches"] == len(network.net.switches)
                    and status["links"] == network_graph.number_of_edges()
                    and view["mismatch"] == want and view)

        view = network.wait_for(reported, timeout_s=30)
        measure("mismatch", view["mismatch"])
        assert want != {"missing_links": [], "unexpected_links": [], "missing_switches": [],
                        "unknown_switches": []}

        # The controller routes around what the file has and the network lacks: the groups
        # are the fallback over the file's topology with the missing links down.
        paths = ex.path_set(network)
        expected = ex.expected_groups(network, paths, ex.fallback(paths, down_links=missing))
        known = sorted(expected)
        problems = []

        def match():
            nonlocal problems
            problems = ex.group_differences(expected, ex.installed_groups(network, known))
            return not problems

        try:
            network.wait_for(match, timeout_s=20, interval_s=0.5)
        except TimeoutError:
            pytest.fail("groups differ from the fallback:\n" + "\n".join(problems[:20]))

        hosts = [network.net.get(ex.host_of(network, node)) for node in file_graph.nodes]
        assert network.net.ping(hosts=hosts, timeout=2) == 0
        assert network.controller.poll() is None
        assert network.api.status()["switches"] == len(network.net.switches)


# Frames a host can put on the wire that the switches hand to the controller, as hex, and
# whether the controller must say it ignored them. The Ethernet source 00:00:00:00:01:01 is
# h1's own MAC: the frames come from a known host port.
H1 = "000000000101"
MALFORMED = [
    # ARP cut short after 10 of its 28 bytes
    ("truncated ARP", "ffffffffffff" + H1 + "0806" + "00010800060400010000", True),
    # ARP whose every field is nonsense: hardware type, lengths, opcode, broadcast addresses
    ("garbage ARP", "ffffffffffff" + H1 + "0806" + "ff" * 28, True),
    # well-formed ARP for IPv4 whose sender is the broadcast MAC at the broadcast IP
    ("ARP from a broadcast sender", "ffffffffffff" + H1 + "0806" + "0001080006040001"
     + "ffffffffffff" + "ffffffff" + "000000000000" + "0a000101", True),
    # IPv4 cut short inside its header, to a MAC nobody has (a table-1 miss)
    ("truncated IPv4", "020000000099" + H1 + "0800" + "450000", True),
    # IPv4 header with a bad version and length (and source 255.255.255.255)
    ("bad IPv4 header", "020000000099" + H1 + "0800" + "ff" * 20, True),
    # LLDP that is not ours: dropped quietly (any foreign LLDP speaker would fill the log)
    ("garbage LLDP", "0180c200000e" + H1 + "88cc" + "de" * 30, False),
    # an ethertype nobody routes, with random bytes: nothing to learn, dropped quietly
    ("unknown ethertype", "020000000099" + H1 + "88b5" + "5a" * 46, False),
]
SEND = ("import socket,sys; s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW); "
        "s.bind((sys.argv[1],0)); [s.send(bytes.fromhex(f)) for f in sys.argv[2:]]")


@pytest.fixture(scope="module")
def small():
    with Testbed("linear:n=3") as network:
        ex.wait_until_ready(network)
        assert network.net.pingAll(timeout=2) == 0
        yield network


def test_malformed_packet_ins_are_ignored_and_logged(small, measure):
    network = small
    h1 = network.net.get("h1")
    assert h1.MAC().replace(":", "") == H1
    hosts_before = network.api.hosts()["hosts"]
    log_before = network.controller_log.read_text()
    out = h1.cmd(f"/usr/bin/python3 -c '{SEND}' h1-eth0 " + " ".join(frame for _, frame, _ in MALFORMED))
    assert "Error" not in out, out
    time.sleep(2)

    assert network.controller.poll() is None, "the controller died"
    status = network.api.status()
    assert status["switches"] == 3 and status["links"] == 4
    # Nothing was learned from the garbage: the same three hosts, at the same places.
    assert network.api.hosts()["hosts"] == hosts_before
    assert network.net.pingAll(timeout=2) == 0
    new_lines = network.controller_log.read_text()[len(log_before):].splitlines()
    logged = [line for line in new_lines if "malformed" in line.lower()]
    measure("malformed_logged", len(logged))
    # Every malformed ARP or IPv4 frame left a line saying it was ignored.
    assert len(logged) >= sum(must for _, _, must in MALFORMED), "\n".join(new_lines[-30:])
    assert not [line for line in new_lines if "Traceback" in line or " failed" in line]
