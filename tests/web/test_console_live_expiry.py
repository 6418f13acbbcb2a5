"""An open live socket does not outlive its token: it is closed with 4401 when the JWT expires
(the page then asks the user to sign in again)."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import websockets

from tests.web.conftest import SECRET
from tests.web.test_console_live import run


def test_the_socket_closes_when_its_token_expires(live_server) -> None:
    me = live_server.call("dispatcher", "GET", "/api/v1/auth/me")
    # signed with the server's key, valid for three more seconds
    token = jwt.encode({"sub": str(me["id"]), "exp": int(time.time()) + 3}, SECRET,
                       algorithm="HS256")

    async def scenario() -> tuple[dict, int, float]:
        url = live_server.url.replace("http://", "ws://") + "/api/v1/live"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
            opened = time.monotonic()
            await ws.send(json.dumps({"type": "ping"}))
            try:
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
                    assert msg["type"] in ("pong", "tickets", "crews", "changed"), msg
            except websockets.ConnectionClosed as exc:
                return ready, exc.rcvd.code, time.monotonic() - opened

    ready, code, after = run(scenario())
    assert ready["type"] == "ready" and ready["role"] == "dispatcher"
    assert code == 4401
    assert 0.5 < after < 8
