"""The REST API: a small WSGI application served by os-ken's eventlet hub inside the app.

Routes map (path, method) to handlers that take a :class:`Request` and return a JSON-able
value, or a :class:`Response` for other content (Prometheus text). Every error is a JSON object
``{"error": "..."}`` with a 4xx/5xx status that says what is wrong; a failing handler answers
500 and is logged. Nothing a client sends can reach the controller as an exception.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

LOG = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


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

    def who(self) -> str:
        """Who sent it, for the record: the client's address and what it calls itself
        (``X-Ryute-Client``, else ``User-Agent``), printable ASCII, at most 60 characters."""
        name = self.headers.get("x-ryute-client") or self.headers.get("user-agent", "")
        name = "".join(c for c in name if " " <= c <= "~")[:60]
        return f"{self.remote or 'unknown address'}" + (f" ({name})" if name else "")

    def json_object(self, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
        """The body as a JSON object with only ``allowed`` keys and all ``required`` ones."""
        try:
            data = json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as error:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {error}") from None
        except RecursionError:  # a few KB of "[[[[..." exhaust the parser's stack
            raise HttpError(HTTPStatus.BAD_REQUEST, "body is not valid JSON: nested too deeply") \
                from None
        if not isinstance(data, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown field(s): {', '.join(unknown)}; "
                            f"allowed: {', '.join(sorted(allowed))}")
        missing = [name for name in required if name not in data]
        if missing:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"missing field(s): {', '.join(missing)}")
        return data

    def int_query(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be an integer, got {raw!r}") \
                from None
        if not low <= value <= high:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be in {low}..{high}, got {value}")
        return value


Handler = Callable[[Request], Any]


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
    """WSGI callable. ``routes`` maps a path to {method: handler}.

    ``loopback_only``: refuse requests whose ``Host`` header is not a loopback name. An API on
    loopback is reachable from a web page in the operator's browser through DNS rebinding
    (the page's own name resolves to 127.0.0.1); the browser then sends that name as Host."""

    def __init__(self, routes: dict[str, dict[str, Handler]], loopback_only: bool = False) -> None:
        self.routes = routes
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
            response = _json(error.status, {"error": str(error)})
        except Exception:
            LOG.exception("REST handler for %s %s failed", method, path)
            response = _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
        start_response(f"{response.status.value} {response.status.phrase}", [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))), *response.headers])
        return [response.body]

    def _dispatch(self, method: str, path: str, environ: dict) -> Response:
        methods = self.routes.get(path)
        if methods is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such resource: {path}")
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED,
                            f"{method} not allowed on {path} (allowed: {allowed})")
        result = handler(_request(method, path, environ))
        return result if isinstance(result, Response) else _json(HTTPStatus.OK, result)


def _json(status: HTTPStatus, body: Any) -> Response:
    return Response(json.dumps(body, indent=1, sort_keys=True).encode() + b"\n", status=status)


def _request(method: str, path: str, environ: dict) -> Request:
    query = {key: values[-1] for key, values in
             parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
               if key.startswith("HTTP_")}
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
    if length > MAX_BODY_BYTES:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"body of {length} bytes; at most {MAX_BODY_BYTES}")
    body = environ["wsgi.input"].read(length) if length else b""
    return Request(method, path, query, headers, body, environ.get("REMOTE_ADDR", ""))
