"""The REST API: a small WSGI application served by os-ken's eventlet hub inside the app.

Routes map (method, path) to functions of the app's read-only view; every answer is JSON,
every error a JSON object ``{"error": "..."}`` with a 4xx/5xx status. A failing handler
answers 500 and is logged; it never reaches the controller.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

LOG = logging.getLogger(__name__)

Handler = Callable[[], Any]


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class RestApi:
    """WSGI callable. ``routes`` maps a path to {method: handler}."""

    def __init__(self, routes: dict[str, dict[str, Handler]]) -> None:
        self.routes = routes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        try:
            status, body = HTTPStatus.OK, self._dispatch(method, path)
        except HttpError as error:
            status, body = error.status, {"error": str(error)}
        except Exception:
            LOG.exception("REST handler for %s %s failed", method, path)
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"}
        payload = json.dumps(body, indent=1, sort_keys=True).encode() + b"\n"
        start_response(f"{status.value} {status.phrase}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def _dispatch(self, method: str, path: str) -> Any:
        methods = self.routes.get(path)
        if methods is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such resource: {path}")
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED,
                            f"{method} not allowed on {path} (allowed: {allowed})")
        return handler()
