from __future__ import annotations

from fastapi import Request

from server.dispatch.service import DispatchConfig


async def dispatch_config(request: Request) -> DispatchConfig:
    cfg = getattr(request.app.state, "dispatch_config", None)
    if cfg is None:
        cfg = request.app.state.dispatch_config = DispatchConfig.from_settings(
            request.app.state.settings)
    return cfg
