"""OpenFlow over TLS: os-ken's options for it, a check of the files before start-up, and the
green SSL sockets its listener needs. Used by ``ryute controller`` (``controller.launcher``)
and, under ``osken-manager``, by the app (``controller.app``)."""
from __future__ import annotations

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
    """The TLS files can be used: read, the key matches the certificate, the CA parses."""
    if config.ofp_tls_cert is None or config.ofp_tls_key is None:
        return
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.ofp_tls_cert, config.ofp_tls_key)
        if config.ofp_tls_ca:
            context.load_verify_locations(config.ofp_tls_ca)
    except (OSError, ssl.SSLError) as error:
        files = ", ".join(f for f in (config.ofp_tls_cert, config.ofp_tls_key, config.ofp_tls_ca)
                          if f)
        raise ValueError(f"OpenFlow TLS: cannot use {files}: "
                         f"{getattr(error, 'strerror', None) or error}") from None
