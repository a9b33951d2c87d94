"""The os-ken application: a thin shell that turns OpenFlow events into calls on plain objects.

Run it with ``ryute controller`` (see ``controller.launcher``) or, equivalently, with
``osken-manager controller/app.py`` (configuration then comes from ``$RYUTE_CONFIG``).
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Any

import networkx as nx
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER
from os_ken.controller.handler import set_ev_cls
from os_ken.lib import hub
from os_ken.lib.packet import ether_types
from os_ken.ofproto import ofproto_v1_3

from controller import openflow
from controller.config import ControllerConfig
from controller.discovery import Link, LinkDiscovery
from controller.rest import RestApi
from topologies.catalog import load_topology

LOG = logging.getLogger("ryute.controller")
OFP = ofproto_v1_3


def guarded(handler):
    """An event handler that raises must not stop the app's event loop: log and go on."""
    @functools.wraps(handler)
    def wrapper(self, ev):
        try:
            handler(self, ev)
        except Exception:
            LOG.exception("%s failed on %s", handler.__name__, type(ev).__name__)
    return wrapper


class RyuteApp(app_manager.OSKenApp):
    OFP_VERSIONS = [OFP.OFP_VERSION]

    def __init__(self, *args: Any, ryute_config: ControllerConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = ryute_config or ControllerConfig.load()
        self.expected: nx.DiGraph | None = (
            load_topology(self.config.topology) if self.config.topology else None)
        self.datapaths: dict[int, Any] = {}
        self.discovery = LinkDiscovery(self.config.link_timeout_s)
        self.started_at = time.time()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self):
        thread = super().start()
        self.threads.append(hub.spawn(self._lldp_loop))
        if self.config.rest_port:
            server = hub.WSGIServer((self.config.rest_host, self.config.rest_port),
                                    RestApi(self.rest_routes()))
            self.threads.append(hub.spawn(server.serve_forever))
            LOG.info("REST API on http://%s:%d/te/v1/status",
                     self.config.rest_host, self.config.rest_port)
        LOG.info("ryute controller started (cookie %#x, topology %s)",
                 self.config.cookie, self.config.topology or "from discovery")
        return thread

    def _lldp_loop(self) -> None:
        while True:
            try:
                for dpid, port_no, frame in self.discovery.probes():
                    self._send(dpid, [openflow.packet_out(port_no, frame)])
                for link in self.discovery.expire(time.monotonic()):
                    LOG.warning("link %s timed out", self._link_name(link))
            except Exception:
                LOG.exception("LLDP round failed")
            hub.sleep(self.config.lldp_interval_s)

    def _send(self, dpid: int, messages: list) -> None:
        datapath = self.datapaths.get(dpid)
        if datapath is None:
            return
        for message in messages:
            message.datapath = datapath
            datapath.send_msg(message)

    # -- OpenFlow events -------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def on_switch_features(self, ev) -> None:
        datapath = ev.msg.datapath
        cookie = self.config.cookie
        # Start from a clean slate of our own rules only; the barrier orders delete before add.
        messages = [openflow.delete_own_flows(cookie), openflow.barrier(),
                    openflow.table_miss(cookie), openflow.lldp_to_controller(cookie)]
        for message in messages:
            message.datapath = datapath
            datapath.send_msg(message)

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    @guarded
    def on_state_change(self, ev) -> None:
        datapath = ev.datapath
        if datapath.id is None:
            return
        if ev.state == MAIN_DISPATCHER:
            self.datapaths[datapath.id] = datapath
            LOG.info("switch %s connected", self._switch_name(datapath.id))
            self._send(datapath.id, [openflow.port_desc_request()])
        elif self.datapaths.get(datapath.id) is datapath:
            del self.datapaths[datapath.id]
            gone = self.discovery.switch_down(datapath.id)
            LOG.warning("switch %s disconnected (%d links gone)",
                        self._switch_name(datapath.id), len(gone))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    @guarded
    def on_port_desc(self, ev) -> None:
        ports = {port.port_no: port.hw_addr for port in ev.msg.body if _is_live(port)}
        self.discovery.switch_up(ev.msg.datapath.id, ports)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def on_port_status(self, ev) -> None:
        dpid, port = ev.msg.datapath.id, ev.msg.desc
        if ev.msg.reason != OFP.OFPPR_DELETE and _is_live(port):
            if self.discovery.port_up(dpid, port.port_no, port.hw_addr):
                LOG.info("port %s:%d up", self._switch_name(dpid), port.port_no)
        elif port.port_no in self.discovery.ports(dpid):
            gone = self.discovery.port_down(dpid, port.port_no)
            LOG.warning("port %s:%d down (%s)", self._switch_name(dpid), port.port_no,
                        ", ".join(self._link_name(link) for link in gone) or "no link")

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def on_packet_in(self, ev) -> None:
        msg = ev.msg
        data = bytes(msg.data)
        if len(data) < 14 or int.from_bytes(data[12:14], "big") != ether_types.ETH_TYPE_LLDP:
            return  # host traffic: learned and forwarded by the pipeline (issue 5)
        link = self.discovery.lldp_received(
            msg.datapath.id, msg.match.get("in_port", 0), data, time.monotonic())
        if link is not None:
            LOG.info("link %s discovered", self._link_name(link))

    # -- views -----------------------------------------------------------------------------
    def _names(self) -> dict[int, str]:
        if self.expected is None:
            return {}
        return {data["dpid"]: node for node, data in self.expected.nodes(data=True)}

    def _switch_name(self, dpid: int) -> str:
        return self._names().get(dpid, f"{dpid:#x}")

    def _link_name(self, link: Link) -> str:
        return (f"{self._switch_name(link.src)}:{link.src_port} -> "
                f"{self._switch_name(link.dst)}:{link.dst_port}")

    def topology_view(self) -> dict[str, Any]:
        names = self._names()
        switches = [{"dpid": dpid, "name": names.get(dpid), "ports": len(self.discovery.ports(dpid))}
                    for dpid in self.discovery.switches]
        links = [{"src": link.src, "src_port": link.src_port, "dst": link.dst,
                  "dst_port": link.dst_port, "src_name": names.get(link.src),
                  "dst_name": names.get(link.dst)} for link in self.discovery.links]
        view = {"switches": switches, "links": links}
        if self.expected is not None:
            view["mismatch"] = self._mismatch()
        return view

    def _mismatch(self) -> dict[str, list]:
        """What the topology file and the discovered network disagree on (reported, not fatal)."""
        names = self._names()
        found = {(names.get(link.src, hex(link.src)), names.get(link.dst, hex(link.dst)))
                 for link in self.discovery.links}
        expected = set(self.expected.edges)
        return {
            "missing_links": sorted(map(list, expected - found)),
            "unexpected_links": sorted(map(list, found - expected)),
            "missing_switches": sorted(name for dpid, name in names.items()
                                       if dpid not in self.datapaths),
            "unknown_switches": sorted(dpid for dpid in self.datapaths if dpid not in names),
        }

    def status_view(self) -> dict[str, Any]:
        return {
            "switches": len(self.datapaths),
            "links": len(self.discovery.links),
            "topology": self.config.topology,
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    def rest_routes(self) -> dict:
        return {
            "/te/v1/status": {"GET": self.status_view},
            "/te/v1/topology": {"GET": self.topology_view},
        }


def _is_live(port) -> bool:
    """A physical port that is administratively and physically up."""
    return (port.port_no <= OFP.OFPP_MAX
            and not port.config & OFP.OFPPC_PORT_DOWN
            and not port.state & OFP.OFPPS_LINK_DOWN)
