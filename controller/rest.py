"""The REST API: a small WSGI application served by os-ken's eventlet hub inside the app.

The route table is a list of :class:`Route`: an :class:`~api.endpoints.Endpoint` (method,
path, authentication, schemas) and the handler that answers it, a function of a
:class:`Request` that returns a JSON-able value, or a :class:`Response` for other content
(Prometheus text). The server enforces what the endpoint says (the token, the body's fields,
the query's bounds) and serves the OpenAPI document of the table at ``/te/v1/openapi.json``,
so a route added to the table is documented and checked with no other change.

Every error is a JSON object ``{"error": "..."}`` with a 4xx/5xx status that says what is
wrong, also for what eventlet refuses before the application sees it (:func:`serve`); a
failing handler answers 500 and is logged. Nothing a client sends can reach the controller
as an exception.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import eventlet.wsgi

from api.endpoints import OPENAPI, Endpoint, openapi

LOG = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


@dataclass(frozen=True)
class Response:
    body: bytes
    content_type: str = "application/json"
    status: HTTPStatus = HTTPStatus.OK
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    remote: str = ""
    """The client's address."""
    endpoint: Endpoint | None = None

    def who(self) -> str:
        """Who sent it, for the record: the client's address and what it calls itself
        (``X-Ryute-Client``, else ``User-Agent``), printable ASCII, at most 60 characters."""
        name = self.headers.get("x-ryute-client") or self.headers.get("user-agent", "")
        name = "".join(c for c in name if " " <= c <= "~")[:60]
        return f"{self.remote or 'unknown address'}" + (f" ({name})" if name else "")

    def json_object(self) -> dict:
        """The body as a JSON object with only the fields the endpoint's request schema lists
        and all the ones it requires."""
        schema = self.endpoint.request if self.endpoint is not None else None
        if schema is None:
            raise TypeError(f"{self.method} {self.path} takes no body")
        try:
            data = json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as error:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {error}") from None
        except RecursionError:  # a few KB of "[[[[..." exhaust the parser's stack
            raise HttpError(HTTPStatus.BAD_REQUEST, "body is not valid JSON: nested too deeply") \
                from None
        if not isinstance(data, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        allowed = schema["properties"]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown field(s): {', '.join(unknown)}; "
                            f"allowed: {', '.join(sorted(allowed))}")
        missing = [name for name in schema.get("required", ()) if name not in data]
        if missing:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"missing field(s): {', '.join(missing)}")
        return data

    def int_query(self, name: str) -> int | None:
        """An integer query parameter within its schema's bounds (its default when absent)."""
        assert self.endpoint is not None, "a routed request"
        schema = self.endpoint.param(name).schema
        raw = self.query.get(name)
        if raw is None:
            return schema.get("default")
        low, high = schema.get("minimum"), schema.get("maximum")
        try:
            value = int(raw)
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be an integer, got "
                            f"{raw[:40]!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"in {low}..{high}" if high is not None else f">= {low}"
            raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be {bounds}, got {value}")
        return value


Handler = Callable[[Request], Any]


@dataclass(frozen=True)
class Route:
    endpoint: Endpoint
    handler: Handler


def require_token(request: Request, token: str | None) -> None:
    """Bearer authentication, when a token is configured.

    The whole raw header value is compared, in constant time, with ``Bearer TOKEN``: nothing is
    stripped (``str.strip`` removes characters such as ``\x0c``, ``\x85`` or ``\xa0``, so a
    stripped header could equal a token it does not hold). An empty token never matches.
    """
    if token is None:
        return
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        raise HttpError(HTTPStatus.UNAUTHORIZED, "this change needs 'Authorization: Bearer TOKEN'")
    sent = header.encode("utf-8", "surrogateescape")
    if not token or not hmac.compare_digest(sent, f"Bearer {token}".encode()):
        raise HttpError(HTTPStatus.FORBIDDEN, "wrong token")


def is_loopback_name(host_header: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (``localhost``, 127.x, ::1),
    with or without a port."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":")[0]
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RestApi:
    """WSGI callable over a route table (the OpenAPI route is added to it).

    ``token()``: the API token at the time of the request (None: none configured), checked as
    each route's endpoint says. ``loopback_only``: refuse requests whose ``Host`` header is
    not a loopback name. An API on loopback is reachable from a web page in the operator's
    browser through DNS rebinding (the page's own name resolves to 127.0.0.1); the browser then
    sends that name as Host."""

    def __init__(self, routes: Iterable[Route], *, token: Callable[[], str | None],
                 loopback_only: bool = False) -> None:
        self.routes = list(routes)
        if not any(route.endpoint == OPENAPI for route in self.routes):
            self.routes.append(Route(OPENAPI, lambda request: self.document))
        self.table: dict[str, dict[str, Route]] = {}
        for route in self.routes:
            methods = self.table.setdefault(route.endpoint.path, {})
            if route.endpoint.method in methods:
                raise ValueError(f"two routes for {route.endpoint.method} {route.endpoint.path}")
            methods[route.endpoint.method] = route
        self.document = openapi(route.endpoint for route in self.routes)
        self.token = token
        self.loopback_only = loopback_only

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        try:
            host = environ.get("HTTP_HOST")
            if self.loopback_only and host is not None and not is_loopback_name(host):
                raise HttpError(HTTPStatus.FORBIDDEN, f"Host {host[:80]!r} is not a loopback "
                                "name: this API answers only requests addressed to loopback")
            response = self._dispatch(method, path, environ)
        except HttpError as error:
            response = error_response(error.status, str(error), error.headers)
        except Exception:
            LOG.exception("REST handler for %s %s failed", method, path[:200])
            response = error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
        start_response(f"{response.status.value} {response.status.phrase}", [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))), *response.headers])
        return [response.body]

    def _dispatch(self, method: str, path: str, environ: dict) -> Response:
        methods = self.table.get(path)
        if methods is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such resource: {path[:200]}")
        route = methods.get(method)
        if route is None:
            allowed = ", ".join(sorted(methods))
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED,
                            f"{method[:20]} not allowed on {path} (allowed: {allowed})",
                            headers=(("Allow", allowed),))
        request = _request(method, path, environ, route.endpoint)
        self._authenticate(route.endpoint, request)
        result = route.handler(request)
        return result if isinstance(result, Response) else _json(HTTPStatus.OK, result)

    def _authenticate(self, endpoint: Endpoint, request: Request) -> None:
        if endpoint.auth == "none":
            return
        token = self.token()
        if token is None and endpoint.auth == "required":
            raise HttpError(HTTPStatus.FORBIDDEN, f"{endpoint.method} {endpoint.path} needs a "
                            "configured api_token (--api-token or $RYUTE_API_TOKEN)")
        require_token(request, token)


def error_response(status: HTTPStatus, message: str,
                   headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return _json(status, {"error": message}, headers)


def _json(status: HTTPStatus, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(json.dumps(body, indent=1, sort_keys=True).encode() + b"\n", status=status,
                    headers=headers)


def _request(method: str, path: str, environ: dict, endpoint: Endpoint) -> Request:
    query = {key: values[-1] for key, values in
             parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
               if key.startswith("HTTP_")}
    body = _body(environ) if endpoint.request is not None else b""
    return Request(method, path, query, headers, body, remote=environ.get("REMOTE_ADDR", ""),
                   endpoint=endpoint)


def _body(environ: dict) -> bytes:
    """The request body, at most ``MAX_BODY_BYTES``: ``Content-Length`` bytes, or a chunked
    body (no length: read until its last chunk, one byte beyond the limit at most)."""
    chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
    if length > MAX_BODY_BYTES:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"body of {length} bytes; at most {MAX_BODY_BYTES}")
    if not chunked:
        return environ["wsgi.input"].read(length) if length else b""
    try:
        body = environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
    except (ValueError, OSError) as error:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad chunked body: {error}") from None
    if len(body) > MAX_BODY_BYTES:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"chunked body beyond {MAX_BODY_BYTES} bytes")
    return body


# -- the HTTP server -------------------------------------------------------------------------
DIGITS = re.compile(r"[0-9]{1,18}")


class JsonErrorsProtocol(eventlet.wsgi.HttpProtocol):
    """eventlet's HTTP/1.1, with the errors it (and the standard library) answer before the
    application as JSON like every other error: a request line too long (414), headers too
    large (431), a malformed request line; and refused: more than one ``Content-Length``, a
    ``Content-Length`` that is not a number, a transfer coding other than chunked, both
    together (request smuggling needs a server and a proxy that read a body differently)."""

    def _read_request_line(self):
        try:
            line = super()._read_request_line()
        except ssl.SSLError as error:  # HTTPS port: a failed handshake, or plain HTTP
            self._refuse_plain_http(error)
            return b""
        except ValueError:  # HTTPS port: a connection the server closed while it idled
            return b""
        if len(line) >= self.server.url_length_limit:
            self._refuse(HTTPStatus.REQUEST_URI_TOO_LONG,
                         f"request line longer than {self.server.url_length_limit} bytes")
            return b""  # eventlet then closes the connection without an answer of its own
        return line

    def _refuse_plain_http(self, error: ssl.SSLError) -> None:
        """A plain-HTTP request on the HTTPS port is answered in plain HTTP, saying so (as
        nginx does); any other failed handshake is logged in one line and closed."""
        self.close_connection = True
        if error.reason != "HTTP_REQUEST":
            LOG.info("REST: TLS handshake with %s failed: %s", self.client_address[0],
                     error.reason or error)
            return
        body = error_response(HTTPStatus.BAD_REQUEST, "this port speaks HTTPS only: use "
                              "https://").body
        raw = socket.socket(fileno=os.dup(self.connection.fileno()))
        try:  # beside the TLS layer, on the same connection
            raw.sendall(f"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                        .encode() + body)
        except OSError:
            pass
        finally:
            raw.close()

    def parse_request(self) -> bool:
        try:
            if not super().parse_request():
                return False
        except eventlet.wsgi.HeaderLineTooLong:
            return self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                                f"a header line of {eventlet.wsgi.MAX_HEADER_LINE} bytes or more")
        except eventlet.wsgi.HeadersTooLarge:
            return self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers larger than "
                                f"{eventlet.wsgi.MAX_TOTAL_HEADER_SIZE} bytes")
        problem = framing_problem(self.headers.get_all("Content-Length") or [],
                                  self.headers.get_all("Transfer-Encoding") or [])
        return self._refuse(HTTPStatus.BAD_REQUEST, problem) if problem else True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """What the standard library's request parsing refuses (its page would be HTML)."""
        self._refuse(HTTPStatus(code), message or HTTPStatus(code).phrase)

    def _refuse(self, status: HTTPStatus, message: str) -> bool:
        body = error_response(status, message).body
        self.wfile.write(f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: "
                         f"application/json\r\nContent-Length: {len(body)}\r\nConnection: "
                         "close\r\n\r\n".encode() + body)
        self.close_connection = True
        _drain(self.connection)
        return False


def framing_problem(lengths: list[str], codings: list[str]) -> str | None:
    """What is wrong with how a request says where its body ends (None: nothing)."""
    if len(lengths) > 1:
        return "more than one Content-Length header"
    if lengths and not DIGITS.fullmatch(lengths[0].strip()):
        return f"Content-Length must be a non-negative integer, got {lengths[0][:40]!r}"
    if codings and (len(codings) > 1 or codings[0].strip().lower() != "chunked"):
        return "Transfer-Encoding: only a single 'chunked' is supported"
    if lengths and codings:
        return "Content-Length and Transfer-Encoding together"
    return None


def _drain(connection: Any) -> None:
    """Read what the client already sent (at most 1 MB, without waiting): a socket closed with
    unread data is reset, and the client would see the reset instead of our answer."""
    try:
        connection.setblocking(False)
        for _ in range(16):
            if not connection.recv(65536):
                break
    except OSError:
        pass


def serve(sock: socket.socket, api: RestApi, *, max_connections: int,
          timeout_s: float) -> None:
    """Serve ``api`` on a listening socket until the hub stops: a bounded pool and a socket
    timeout, so idle or slow-loris connections are closed instead of holding a green thread
    each until the API stops answering."""
    from os_ken.lib import hub

    eventlet.wsgi.server(sock, api, log=hub.LoggingWrapper(), protocol=JsonErrorsProtocol,
                         max_size=max_connections, socket_timeout=timeout_s)
