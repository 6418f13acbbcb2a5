"""The two HTTP questions a handset asks the server (stdlib urllib: nothing extra to build for
Android): pairing, and the verdict on a tag scan it sent over MQTT. Everything else goes over MQTT.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any


class ApiError(Exception):
    """The server answered with an error: ``status``, its stable ``code``, a message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class NetworkError(Exception):
    """The server could not be reached (no signal, wrong address, TLS failure…)."""


def _request(method: str, url: str, body: dict | None = None, *, auth: tuple[str, str] | None = None,
             timeout: float = 10) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode() or "{}")
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read().decode()).get("error", {})
        except (ValueError, AttributeError):
            err = {}
        raise ApiError(exc.code, err.get("code", "error"), err.get("message", str(exc)),
                       err.get("details")) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise NetworkError(str(getattr(exc, "reason", exc))) from None


def pair(server_url: str, code: str, name: str, *, timeout: float = 10) -> dict[str, Any]:
    """POST /api/v1/devices/pair: the device, its MQTT credentials, the broker and the user."""
    return _request("POST", server_url.rstrip("/") + "/api/v1/devices/pair",
                    {"code": code, "name": name}, timeout=timeout)


def scan_verdict(server_url: str, device_id: str, password: str, msg_id: str, *,
                 timeout: float = 5) -> dict[str, Any] | None:
    """The server's verdict on a scan sent over MQTT, or None while it has not arrived."""
    try:
        return _request("GET", f"{server_url.rstrip('/')}/api/v1/devices/self/scans/{msg_id}",
                        auth=(device_id, password), timeout=timeout)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
