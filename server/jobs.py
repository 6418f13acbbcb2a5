"""The background job queue (procrastinate on PostgreSQL) and its worker's composition root."""

from __future__ import annotations

from functools import lru_cache

import procrastinate

from server.core.clock import Clock, SystemClock
from server.core.db import make_engine, make_sessionmaker
from server.notifications.tasks import blueprint as notification_tasks
from server.settings import get_settings
from server.tickets.tasks import blueprint as ticket_tasks

# Every domain's task blueprint, by namespace; a new domain adds one line.
BLUEPRINTS = {
    "tickets": ticket_tasks,
    "dispatch": __import__("server.dispatch.tasks", fromlist=["blueprint"]).blueprint,
    "notifications": notification_tasks,
    "outages": __import__("server.outages.tasks", fromlist=["blueprint"]).blueprint,
    "inspections": __import__("server.inspections.tasks", fromlist=["blueprint"]).blueprint,
    "devices": __import__("server.devices.tasks", fromlist=["blueprint"]).blueprint,
}


_app: tuple[str, procrastinate.App] | None = None


def make_app(conninfo: str) -> procrastinate.App:
    """The procrastinate App of this process, on ``conninfo``. Made once: an App adopting a
    blueprint renames its tasks in place (the namespace prefix), so the blueprints can belong to
    one App only — a second App would see ``outages:outages:inference``."""
    global _app
    if _app is None:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
        for namespace, blueprint in BLUEPRINTS.items():
            app.add_tasks_from(blueprint, namespace=namespace)
        _app = (conninfo, app)
    elif _app[0] != conninfo:
        raise RuntimeError("this process's job app is already bound to another database")
    return _app[1]


class WorkerContext:
    """What tasks need: a session factory and a clock (replaced in tests)."""

    def __init__(self) -> None:
        settings = get_settings()
        self.settings = settings
        self.sessionmaker = make_sessionmaker(make_engine(settings, pool_size=4))
        self.clock: Clock = SystemClock()


@lru_cache
def context() -> WorkerContext:
    return WorkerContext()
