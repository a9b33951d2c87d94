"""TLS for the controller's two ports. OpenFlow: os-ken's options for it, a check of the files
before start-up, and the green SSL sockets its listener needs. REST (HTTPS): the same check,
and the green SSL context its listening socket is wrapped in. Used by ``ryute controller``
(``controller.launcher``) and, under ``osken-manager``, by the app (``controller.app``)."""
from __future__ import annotations

from typing import Any

from controller.config import ControllerConfig


def tls_flags(config: ControllerConfig) -> list[str]:
    """os-ken's options for OpenFlow over TLS: with a certificate, its OpenFlow listener on
    ``ofp_port`` speaks TLS only (os-ken's ``ctl_privkey``, ``ctl_cert``, ``ca_certs``)."""
    if config.ofp_tls_cert is None or config.ofp_tls_key is None:
        return []
    flags = ["--ctl-privkey", config.ofp_tls_key, "--ctl-cert", config.ofp_tls_cert,
             "--ofp-ssl-listen-port", str(config.ofp_port)]
    return flags + (["--ca-certs", config.ofp_tls_ca] if config.ofp_tls_ca else [])


def green_tls() -> None:
    """os-ken's TLS listener with eventlet's SSL sockets.

    os-ken patches threads only (``hub.patch(thread=True)``), not ``socket``/``ssl``, so its
    server wraps its green sockets in the standard library's ``SSLContext``: the handshake
    completes, then the non-blocking reads and writes stall and no switch gets past HELLO. Its
    controller module gets eventlet's ``ssl`` (the same names, green sockets), nothing else."""
    from eventlet.green import ssl as green_ssl
    from os_ken.controller import controller as ofp_controller

    ofp_controller.ssl = green_ssl


def check_tls(config: ControllerConfig) -> None:
    """The OpenFlow TLS files can be used: read, the key matches the certificate, the CA
    parses."""
    if config.ofp_tls_cert is not None and config.ofp_tls_key is not None:
        _check_files("OpenFlow TLS", config.ofp_tls_cert, config.ofp_tls_key, config.ofp_tls_ca)


def check_rest_tls(config: ControllerConfig) -> None:
    """The REST API's certificate and key can be used (one line naming them if not)."""
    if config.rest_tls_cert is not None and config.rest_tls_key is not None:
        _check_files("REST HTTPS", config.rest_tls_cert, config.rest_tls_key, None)


def rest_tls_context(config: ControllerConfig) -> Any:
    """The server-side SSL context of the REST port (eventlet's green one: the REST server
    runs on os-ken's hub, whose sockets are green), or None without a certificate."""
    if config.rest_tls_cert is None or config.rest_tls_key is None:
        return None
    from eventlet.green import ssl as green_ssl

    context = green_ssl.SSLContext(green_ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = green_ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.rest_tls_cert, config.rest_tls_key)
    return context


def _check_files(what: str, cert: str, key: str, ca: str | None) -> None:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
        if ca:
            context.load_verify_locations(ca)
    except (OSError, ssl.SSLError) as error:
        files = ", ".join(f for f in (cert, key, ca) if f)
        raise ValueError(f"{what}: cannot use {files}: "
                         f"{getattr(error, 'strerror', None) or error}") from None
