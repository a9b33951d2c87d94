"""The one client of the controller's REST API: typed methods over :mod:`api.endpoints`.

    client = ControllerClient("http://127.0.0.1:8080", token=os.environ.get("RYUTE_API_TOKEN"))
    client.status()["mode"]; client.set_mode("active", fraction=0.25)

Every failure is an :class:`ApiError` with one line: the HTTP status and the server's
``error`` message for a refused request; a bad URL, a controller that cannot be reached or
does not answer in time, an answer that is not JSON (``status`` None).
"""
from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from api import endpoints
from api.endpoints import Endpoint

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    """A call that failed. ``status``: the HTTP status of a refused request (None: no HTTP
    answer, or not a JSON one); ``reason``: the server's ``error`` message, or what failed."""

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or message


class ControllerClient:
    """A running controller at ``url`` (``http://HOST:PORT``, or ``https://`` for an API with
    a certificate); ``token``: the bearer token for changes; ``timeout_s``: for each request;
    ``ca_file``: the CA certificate(s) (PEM) an HTTPS controller's certificate must be signed
    by (default: the system's)."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 10.0,
                 ca_file: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token or None
        self.timeout_s = timeout_s
        problem = _url_problem(self.url)
        if problem:
            raise ApiError(f"bad controller URL {url!r}: {problem}")
        self._tls = _tls_context(ca_file) if ca_file else None

    def __repr__(self) -> str:
        return f"ControllerClient({self.url!r})"

    # -- reads -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self.call(endpoints.STATUS)

    def mode(self) -> dict[str, Any]:
        return self.call(endpoints.MODE)

    def topology(self) -> dict[str, Any]:
        return self.call(endpoints.TOPOLOGY)

    def paths(self) -> dict[str, Any]:
        return self.call(endpoints.PATHS)

    def hosts(self) -> dict[str, Any]:
        return self.call(endpoints.HOSTS)

    def traffic(self, units: str = "network") -> dict[str, Any]:
        """The latest measured OD matrix (``units="topology"``: as the policies see it)."""
        return self.call(endpoints.TRAFFIC, query={"units": units})

    def decision_page(self, limit: int = 20, before: int | None = None) -> dict[str, Any]:
        """One page of the decision log, newest first (``limit`` at most
        ``DECISIONS_PAGE_MAX``); its ``next_before`` is the ``before`` of the next page."""
        query = {"limit": limit, **({"before": before} if before is not None else {})}
        return self.call(endpoints.DECISIONS, query=query)

    def iter_decisions(self, page: int = endpoints.DECISIONS_PAGE_MAX) -> Iterator[dict[str, Any]]:
        """Every decision record the controller holds, newest first, a page at a time."""
        before: int | None = None
        while True:
            answer = self.decision_page(page, before)
            records, after = answer.get("decisions"), answer.get("next_before")
            if not isinstance(records, list) or not (after is None or (
                    isinstance(after, int) and (before is None or after < before))):
                raise ApiError(f"{self.url}{endpoints.DECISIONS.path}: not the answer of a "
                               "ryute controller (no decisions list, or a next_before that "
                               "does not go back)")
            yield from records
            if after is None or not records:
                return
            before = after

    def decisions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest ``limit`` decision records, newest first (paged as the server needs)."""
        if limit < 1:  # the server says what is wrong with it
            return self.decision_page(limit)["decisions"]
        records: list[dict[str, Any]] = []
        for record in self.iter_decisions(min(limit, endpoints.DECISIONS_PAGE_MAX)):
            records.append(record)
            if len(records) >= limit:
                break
        return records

    def metrics(self) -> str:
        """The Prometheus exposition."""
        return self.call(endpoints.METRICS)

    def openapi(self) -> dict[str, Any]:
        return self.call(endpoints.OPENAPI)

    # -- changes -----------------------------------------------------------------------------
    def set_mode(self, mode: str, *, fraction: float | None = None, step: float | None = None,
                 ingress: Sequence[str] | None = None) -> dict[str, Any]:
        """``shadow``, ``active`` (gradually with ``fraction``, ``step``, ``ingress``) or
        ``external``; decided and installed at once."""
        body: dict[str, Any] = {"mode": mode}
        if fraction is not None:
            body["fraction"] = fraction
        if step is not None:
            body["step"] = step
        if ingress is not None:
            body["ingress"] = list(ingress)
        return self.call(endpoints.SET_MODE, body)

    def put_model(self, path: str) -> dict[str, Any]:
        """Hot-swap the agent's model (a file on the controller's machine, or ``default``)."""
        return self.call(endpoints.SET_MODEL, {"path": path})

    def put_decision(self, weights: Sequence[float]) -> dict[str, Any]:
        """External mode: these path weights, one per path id, installed if they are safe."""
        return self.call(endpoints.PUT_DECISION, {"weights": [float(w) for w in weights]})

    # -- the call ----------------------------------------------------------------------------
    def call(self, endpoint: Endpoint, body: Any = None,
             query: dict[str, Any] | None = None) -> Any:
        """One request to ``endpoint``: the decoded answer (a JSON object, or text)."""
        where = endpoint.path + ("?" + urllib.parse.urlencode(query) if query else "")
        raw = self._send(endpoint.method, where, body)
        if endpoint.content_type != endpoints.JSON:
            return raw.decode("utf-8", "replace")
        answer = _decode(raw)
        if answer is _NOT_JSON:
            raise ApiError(f"{self.url}{where} answered something that is not JSON: is it a "
                           "ryute controller?")
        if not isinstance(answer, dict):
            raise ApiError(f"{self.url}{where} answered JSON that is not an object: is it a "
                           "ryute controller?")
        return answer

    def _send(self, method: str, where: str, body: Any) -> bytes:
        request = urllib.request.Request(
            self.url + where, method=method,
            data=json.dumps(body).encode() if body is not None else None)
        if body is not None:
            request.add_header("Content-Type", endpoints.JSON)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s,
                                        context=self._tls) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            reason = _error_message(error)
            raise ApiError(f"{error.code} from {self.url}{where}: {reason}", error.code,
                           reason) from None
        except TimeoutError:
            raise ApiError(f"no answer from the controller at {self.url} within "
                           f"{self.timeout_s:g} s") from None
        except urllib.error.URLError as error:
            raise ApiError(f"cannot reach the controller at {self.url}: {error.reason}") from None
        except (http.client.InvalidURL, ValueError) as error:
            raise ApiError(f"bad controller URL {self.url!r}: {error}") from None
        except http.client.HTTPException as error:
            raise ApiError(f"{self.url} does not speak HTTP as expected: "
                           f"{type(error).__name__}") from None
        except OSError as error:  # a reset or a timeout while reading the answer
            raise ApiError(f"cannot reach the controller at {self.url}: {error}") from None


_NOT_JSON = object()


def _tls_context(ca_file: str) -> ssl.SSLContext:
    """Certificates checked against ``ca_file``, the host name against the certificate."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise ApiError(f"CA file {ca_file}: cannot use it: "
                       f"{getattr(error, 'strerror', None) or error}") from None


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _error_message(error: urllib.error.HTTPError) -> str:
    """The ``error`` of a JSON error answer, else the HTTP reason phrase."""
    try:
        answer = _decode(error.read())
    except OSError:
        answer = None
    message = answer.get("error") if isinstance(answer, dict) else None
    return message if isinstance(message, str) and message else str(error.reason)


def _url_problem(url: str) -> str | None:
    """What is wrong with a controller URL (None: nothing)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as error:
        return str(error)
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "no host"
    return None
