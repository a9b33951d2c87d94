"""The controller skeleton on real Open vSwitch: handshake, own rules, LLDP discovery."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from controller.config import DEFAULT_COOKIE


def test_every_switch_connects(abilene):
    status = abilene.wait_for(lambda: (s := abilene.api.status())["switches"] == 12 and s)
    assert status["topology"] == "abilene"


def test_own_rules_are_installed_with_the_app_cookie(abilene):
    for switch in sorted(abilene.bridges):
        flows = abilene.dump_flows(switch)
        ours = [line for line in flows.splitlines() if f"cookie={DEFAULT_COOKIE:#x}" in line]
        assert any("priority=0 " in line and "CONTROLLER" in line for line in ours), flows
        assert any("dl_type=0x88cc" in line and "CONTROLLER" in line for line in ours), flows


def test_discovered_links_equal_the_topology(abilene):
    expected = sorted(map(list, abilene.graph.edges))

    def discovered():
        view = abilene.api.topology()
        found = sorted([link["src_name"], link["dst_name"]] for link in view["links"])
        return found == expected and view

    view = abilene.wait_for(discovered, timeout_s=30)
    assert view["mismatch"] == {"missing_links": [], "unexpected_links": [],
                                "missing_switches": [], "unknown_switches": []}
    ports = {(link["src"], link["src_port"]) for link in view["links"]}
    assert len(ports) == len(expected)  # one port per directed link, no double counting


def test_rest_errors_are_json(abilene):
    for path, method, status in [("/te/v1/nothing", "GET", 404), ("/te/v1/status", "DELETE", 405)]:
        request = urllib.request.Request(abilene.rest_url + path, method=method)
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=5)
        assert error.value.code == status
        assert "error" in json.loads(error.value.read())
