"""``ryute controller``: a thin launcher over os-ken's AppManager.

Does what ``osken-manager controller/app.py`` does, plus: one configuration (defaults < TOML
file < options) handed to the app, and a clear error before start-up for a bad topology file.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import socket

from controller.config import PATH_METHODS, ControllerConfig
from controller.tls import check_rest_tls, check_tls, green_tls, tls_flags

LOG = logging.getLogger("ryute.controller")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "controller", help="run the OpenFlow 1.3 controller application",
        description="Run the ryute controller (os-ken app). Options override the config file.")
    parser.add_argument("--config", help="TOML file with controller options "
                        "(default: $RYUTE_CONFIG, else built-in defaults)")
    parser.add_argument("--topology", help="catalog name or topology file of the network")
    parser.add_argument("--ofp-host", help="OpenFlow listen address (default 0.0.0.0)")
    parser.add_argument("--ofp-port", type=int, help="OpenFlow listen port (default 6653)")
    parser.add_argument("--ofp-tls-cert", dest="ofp_tls_cert",
                        help="OpenFlow over TLS: the controller's certificate (PEM)")
    parser.add_argument("--ofp-tls-key", dest="ofp_tls_key",
                        help="OpenFlow over TLS: its private key (PEM)")
    parser.add_argument("--ofp-tls-ca", dest="ofp_tls_ca",
                        help="OpenFlow over TLS: accept only switches whose certificate this "
                             "CA signed (PEM)")
    parser.add_argument("--rest-host", help="REST API address (default 127.0.0.1)")
    parser.add_argument("--rest-port", type=int, help="REST API port, 0 disables (default 8080)")
    parser.add_argument("--rest-tls-cert", dest="rest_tls_cert",
                        help="HTTPS for the REST API: its certificate (PEM); plain HTTP is "
                             "then refused on the REST port")
    parser.add_argument("--rest-tls-key", dest="rest_tls_key",
                        help="HTTPS for the REST API: its private key (PEM)")
    parser.add_argument("--poll-interval", type=float, dest="poll_interval_s",
                        help="statistics poll interval in seconds (default 5)")
    parser.add_argument("--lldp-interval", type=float, dest="lldp_interval_s",
                        help="LLDP probe interval in seconds (default 1)")
    parser.add_argument("--capacity-scale", type=float, dest="capacity_scale",
                        help="divide the topology file's capacities by this (Mininet --scale)")
    parser.add_argument("--paths-k", type=int, dest="paths_k", help="candidate paths per OD pair")
    parser.add_argument("--path-method", dest="path_method", choices=PATH_METHODS,
                        help="how candidate paths are chosen (default hops)")
    parser.add_argument("--no-local-repair", dest="local_repair", action="store_const",
                        const=False, default=None,
                        help="no fast-failover groups: only the controller moves traffic off "
                             "a failed link")
    parser.add_argument("--model", help="agent model file, or 'default' for the shipped model")
    parser.add_argument("--allow-fallback-only", dest="allow_fallback_only",
                        action="store_const", const=True, default=None,
                        help="start even if --model cannot be loaded (the fallback decides "
                             "alone; default: refuse to start)")
    parser.add_argument("--mode", choices=["shadow", "active", "external"],
                        help="start mode (default shadow; external: decisions through the API)")
    parser.add_argument("--api-token", dest="api_token",
                        help="bearer token for REST changes (default: $RYUTE_API_TOKEN)")
    parser.add_argument("--trusted-keys", dest="trusted_keys",
                        help="load only models signed by these ed25519 public keys "
                             "(a PEM file or a folder of *.pub files)")
    parser.add_argument("--decision-log", dest="decision_log",
                        help="append every decision to this JSON-lines file")
    parser.add_argument("--record", dest="record_dir", metavar="DIR",
                        help="keep the measured OD matrices as .tm.npz files in DIR (a day "
                             "each, the last 30 kept; ryute data join DIR makes one series)")
    parser.add_argument("--adapt", action="store_const", const=True, default=None,
                        help="fine-tune the model in operation (separate process)")
    parser.add_argument("--budget-ms", type=float, dest="budget_ms",
                        help="agent decision time budget in ms (default 50)")
    parser.add_argument("--rollout-fraction", type=float, dest="rollout_fraction",
                        help="active mode, gradually: share of each OD pair's weight moved to "
                             "the agent's split, in (0, 1]")
    parser.add_argument("--rollout-step", type=float, dest="rollout_step",
                        help="widen the fraction by this while the measured MLU stays within "
                             "the margin of the fallback's (default 0: it stays)")
    parser.add_argument("--rollout-ingress", dest="rollout_ingress",
                        type=lambda text: tuple(name for name in text.split(",") if name),
                        help="canary: only the OD pairs entering at these switches (a,b,c)")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> ControllerConfig:
    overrides = {name: getattr(args, name, None) for name in (
        "topology", "ofp_host", "ofp_port", "ofp_tls_cert", "ofp_tls_key", "ofp_tls_ca",
        "rest_host", "rest_port", "rest_tls_cert", "rest_tls_key",
        "poll_interval_s", "lldp_interval_s", "capacity_scale", "paths_k", "path_method",
        "local_repair", "model", "allow_fallback_only", "mode",
        "api_token", "decision_log", "record_dir", "budget_ms", "adapt", "trusted_keys",
        "rollout_fraction", "rollout_step", "rollout_ingress")}
    if overrides["api_token"] is None:  # set but empty is refused, not taken for "no token"
        overrides["api_token"] = os.environ.get("RYUTE_API_TOKEN")
    return ControllerConfig.load(args.config, log_level=args.log_level, **overrides)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if config.topology:
        from topologies.catalog import load_topology
        load_topology(config.topology)  # fail here, with the file's name, not inside the app
    check_tls(config)  # unreadable or mismatched files fail here, in one line
    check_rest_tls(config)
    if config.trusted_keys:
        from agents.model_signing import load_trusted_keys
        load_trusted_keys(config.trusted_keys)  # a bad key file fails here, in one line
    if config.model and not config.topology:
        raise ValueError("--model needs --topology: a model is trained for one network")
    if config.adapt and config.trusted_keys:
        raise ValueError("--adapt with trusted_keys: the adapter's models are not signed, so "
                         "every one would be refused; use one or the other")
    if config.adapt and not config.model:
        raise ValueError("--adapt needs --model: adaptation fine-tunes a model")
    stopped_by = serve(config)
    return 130 if stopped_by == "SIGINT" else 0  # SIGTERM is a normal stop (systemd's too)


def serve(config: ControllerConfig) -> str | None:
    """Start os-ken with our app and block until it stops; the signal that stopped it."""
    import warnings
    warnings.filterwarnings("ignore", message="\nEventlet is deprecated")  # os-ken's choice
    from os_ken.lib import hub
    hub.patch(thread=True)
    logging.getLogger("os_ken.lib.hub").setLevel(logging.WARNING)  # one line per HTTP request
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    listeners = {(config.ofp_host, config.ofp_port): bind_exclusively(
        "OpenFlow", config.ofp_host, config.ofp_port)}
    if config.rest_port:
        listeners[(config.rest_host, config.rest_port)] = bind_exclusively(
            "REST", config.rest_host, config.rest_port)
    hub.listen = _prebound_listen(listeners)

    cfg.CONF(args=["--ofp-listen-host", config.ofp_host,
                   "--ofp-tcp-listen-port", str(config.ofp_port), *tls_flags(config)],
             project="os_ken", default_config_files=[])
    if config.ofp_tls_cert:
        green_tls()
    manager = AppManager.get_instance()
    manager.load_apps(["controller.app"])
    contexts = manager.create_contexts()
    threads = manager.instantiate_apps(ryute_config=config, **contexts)
    from controller.app import StopSignal

    try:
        hub.joinall(threads)
    except StopSignal as stop:  # SIGINT or SIGTERM, see RyuteApp._on_stop_signal
        return stop.signal
    finally:
        manager.close()
    return None


def bind_exclusively(kind: str, host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening socket on (host, port) that no other process shares, or a one-line error.

    eventlet's ``listen``, which os-ken uses, sets ``SO_REUSEPORT``: a second controller on the
    same ports would start without error and take half the switches and requests (split
    brain). Without that option a second bind fails; ``SO_REUSEADDR`` only lets a restarted
    controller reuse ports whose old connections are in TIME_WAIT.
    """
    try:
        family, kind_, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError, OSError) as error:
        raise ValueError(f"cannot listen for {kind} on {host}:{port}: bad address "
                         f"({getattr(error, 'strerror', None) or error})") from None
    sock = socket.socket(family, kind_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ValueError(f"{kind} port {port} on {host} is already in use (another "
                             "controller?); refusing to start beside it") from None
        raise ValueError(f"cannot listen for {kind} on {host}:{port}: "
                         f"{error.strerror or error}") from None
    return sock


def _prebound_listen(listeners: dict[tuple[str, int], socket.socket]):
    """os-ken's ``hub.listen``, handing out the sockets bound before start-up; any other
    address is bound without ``SO_REUSEPORT`` as well."""
    import eventlet
    from eventlet.greenio import GreenSocket

    def listen(addr, family=socket.AF_INET, backlog=50, reuse_addr=True, reuse_port=None):
        sock = listeners.pop(tuple(addr), None) if isinstance(addr, tuple) else None
        if sock is not None:
            return GreenSocket(sock)  # os-ken's servers accept in green threads
        return eventlet.listen(addr, family, backlog, reuse_addr, reuse_port=False)

    return listen
