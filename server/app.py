"""The web application: composition root for HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as SqlPoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.auth.router import router as auth_router
from server.auth.service import ActiveUserCache
from server.core.clock import Clock, SystemClock
from server.core.db import AsyncDatabase, make_engine, make_sessionmaker
from server.core.errors import CrewlineError
from server.core.logging import configure_logging
from server.customers.router import router as customers_router
from server.notifications.router import router as sms_router
from server.settings import Environment, Settings, get_settings
from server.tags.router import router as tags_router
from server.tickets.router import router as tickets_router
from server.tickets.sla_router import router as sla_router
from server.web.router import router as web_router

ATTRIBUTION = "Map data © OpenStreetMap contributors, ODbL"
_HTTP_CODES = {400: "bad_request", 401: "not_authenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large",
               415: "unsupported_media_type", 422: "invalid_input", 429: "rate_limited"}


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or str(loc[-1] if loc else "")


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    production = settings.env is Environment.production

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await app.state.async_db.close()

    app = FastAPI(lifespan=lifespan, title="Crewline", version="0.1.0",
                  description="Field service and dispatch for utilities. " + ATTRIBUTION,
                  # the interactive docs are for developers; production serves no schema
                  docs_url=None if production else "/docs",
                  redoc_url=None if production else "/redoc",
                  openapi_url=None if production else "/openapi.json")
    engine = make_engine(settings)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.async_db = AsyncDatabase(settings)
    app.state.clock = clock or SystemClock()
    app.state.user_cache = ActiveUserCache()

    @app.exception_handler(CrewlineError)
    async def _crewline_error(_: Request, exc: CrewlineError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        details = [{"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", ""),
                    "type": e.get("type", "")} for e in errors]
        first = details[0] if details else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return JSONResponse({"error": {"code": "validation_error", "message": message,
                                       "field": first["field"], "details": details}},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(SqlPoolTimeout)
    async def _busy(_: Request, exc: Exception) -> JSONResponse:
        # every pooled database connection stayed busy for the pool's whole timeout
        return JSONResponse({"error": {"code": "service_busy",
                                       "message": "the service is overloaded; try again shortly"}},
                            status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        import structlog

        structlog.get_logger().exception("unhandled error", error=type(exc).__name__)
        return JSONResponse({"error": {"code": "internal_error",
                                       "message": "something went wrong on our side; it has been "
                                                  "logged"}}, status_code=500)

    @app.get("/health", tags=["health"])
    def health() -> dict:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "database": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app


# Every domain's HTTP router; a new domain adds its router here (one line).
ROUTERS = [
    auth_router,
    customers_router,
    tickets_router,
    sla_router,
    __import__("server.crews.router", fromlist=["router"]).router,
    __import__("server.dispatch.router", fromlist=["router"]).router,
    tags_router,
    web_router,
    sms_router,
    __import__("server.devices.router", fromlist=["router"]).router,
    __import__("server.outages.router", fromlist=["router"]).router,
    __import__("server.devices.pairing_router", fromlist=["router"]).router,
    __import__("server.console.router", fromlist=["router"]).router,
    __import__("server.inspections.router", fromlist=["router"]).router,
]
