"""OpenFlow over TLS (issue 17) against a real ``ryute controller`` process: the OpenFlow port
speaks TLS only, greets a TLS client with an OpenFlow 1.3 HELLO, and with ``--ofp-tls-ca``
accepts only switches whose certificate that CA signed. (With Open vSwitch's ``ssl:``:
tests/integration/test_ovs_tls.py.)"""
from __future__ import annotations

import socket
import ssl

import pytest

from tests.tls_files import make_tls_files

HELLO = b"\x04\x00\x00\x08\x00\x00\x00\x01"  # OpenFlow 1.3 HELLO, xid 1


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _hello_over_tls(port: int, ca, client=None) -> bytes:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(HELLO)
            return sock.recv(8)


def test_the_openflow_port_speaks_tls(controller, tls):
    ctl = controller("--ofp-tls-cert", str(tls.controller.cert),
                     "--ofp-tls-key", str(tls.controller.key)).wait_ready()
    assert _hello_over_tls(ctl.ofp_port, tls.ca)[:2] == b"\x04\x00"
    with socket.create_connection(("127.0.0.1", ctl.ofp_port), timeout=5) as plain:
        plain.sendall(HELLO)  # a plain-TCP switch: no OpenFlow answer, the TLS server hangs up
        try:
            answer = plain.recv(8)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"\x04\x00")
    assert f"OpenFlow listening on 127.0.0.1:{ctl.ofp_port} (TLS)" in ctl.output()


def test_with_a_ca_only_switches_it_signed_connect(controller, tls):
    ctl = controller("--ofp-tls-cert", str(tls.controller.cert), "--ofp-tls-key",
                     str(tls.controller.key), "--ofp-tls-ca", str(tls.ca)).wait_ready()
    assert _hello_over_tls(ctl.ofp_port, tls.ca, tls.switch)[:2] == b"\x04\x00"
    for client in (None, tls.stranger):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, TimeoutError,
                            OSError)):
            answer = _hello_over_tls(ctl.ofp_port, tls.ca, client)
            assert answer[:2] != b"\x04\x00"  # TLS 1.3 reports the refusal on the first read
            raise ssl.SSLError("refused after the handshake")
    assert "(TLS, switch certificates checked)" in ctl.output()


@pytest.mark.parametrize("case", ["key of another certificate", "missing", "half"])
def test_unusable_tls_files_refuse_to_start_in_one_line(controller, tls, tmp_path, case):
    args = {"key of another certificate": ["--ofp-tls-cert", str(tls.controller.cert),
                                           "--ofp-tls-key", str(tls.switch.key)],
            "missing": ["--ofp-tls-cert", str(tmp_path / "absent.pem"),
                        "--ofp-tls-key", str(tls.controller.key)],
            "half": ["--ofp-tls-cert", str(tls.controller.cert)]}[case]
    ctl = controller(*args)
    assert ctl.wait_exit() == 2
    last = ctl.output().strip().splitlines()[-1]
    assert ("ofp_tls_cert and ofp_tls_key go together" in last if case == "half"
            else "OpenFlow TLS: cannot use" in last)
    assert "Traceback" not in ctl.output()
