"""`crewline demo load`: customers at real Helsinki addresses, demo users, a few tickets."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import func, select

from gis.osm import iter_addressed_buildings, unique_by_address
from server.auth import service as auth
from server.auth.service import Principal
from server.core.clock import SystemClock
from server.core.db import make_engine, make_sessionmaker, transaction
from server.customers import importer
from server.demo.synthetic import customers_for
from server.models import Customer, Role, ServicePoint, Ticket, User
from server.settings import Environment, Settings
from server.tickets import service as tickets
from server.tickets.schemas import TicketIn

DEMO_PASSWORD = "crewline-demo"
DEMO_USERS = [
    ("admin", Role.admin, "系统管理员 Admin", "en"),
    ("agent", Role.agent, "话务员 李娜", "zh-CN"),
    ("agent2", Role.agent, "Call agent Emma Laine", "en"),
    ("dispatcher", Role.dispatcher, "调度员 王强", "zh-CN"),
    ("manager", Role.manager, "经理 陈静", "zh-CN"),
    ("tech1", Role.technician, "维修工 张伟", "zh-CN"),
    ("tech2", Role.technician, "维修工 刘洋", "zh-CN"),
    ("tech3", Role.technician, "Technician Mikko Nieminen", "en"),
]
DEMO_TICKETS = [
    ("repair", "emergency", "主管道爆裂，街道积水 / Water main burst, street flooding"),
    ("repair", "normal", "水表漏水 / Meter leaking"),
    ("outage_report", "high", "整栋楼停水 / No water in the whole building"),
    ("complaint", "normal", "水有异味 / Water smells odd"),
    ("help_request", "high", "老人家中阀门无法关闭 / Elderly resident cannot close valve"),
]


def load_demo(settings: Settings, pbf: Path, *, limit: int | None = None, seed: int = 42,
              progress: Callable[[], Progress] | None = None, console: Console | None = None) -> dict:
    console = console or Console()  # stdout: the summary and logins are the command's answer
    if settings.env is Environment.production:
        raise SystemExit("refusing to load demo data (with known passwords) in production")
    places = []
    with (progress() if progress else nullcontext()) as bar:
        task = bar.add_task("reading Helsinki addresses", total=None) if bar else None
        for place in unique_by_address(iter_addressed_buildings(pbf, include_address_nodes=True)):
            places.append(place)
            if bar and len(places) % 50 == 0:
                bar.update(task, completed=len(places))
        if bar:
            bar.update(task, completed=len(places), total=len(places))
    rows = list(customers_for(len(places), seed=seed))
    if limit:
        rows = rows[:limit]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["account_no", "name", "phones", "language", "sms_consent", "address", "lon", "lat"])
    for index, unit, c in rows:
        p = places[index]
        address = p.address if unit == 0 else f"{p.street} {p.housenumber} {chr(65 + unit)}"
        if unit and p.postcode:
            address += f", {p.postcode}"
        if unit and p.city:
            address += f" {p.city}"
        w.writerow([c.account_no, c.name, ";".join(c.phones), c.language,
                    "yes" if c.sms_consent else "no", address, f"{p.lon:.7f}", f"{p.lat:.7f}"])
    csv_text = out.getvalue()
    data_dir = pbf.parent
    (data_dir / "demo-customers.csv").write_text(csv_text, encoding="utf-8")

    engine = make_engine(settings, pool_size=2)
    factory = make_sessionmaker(engine)
    try:
        with factory() as session, (progress() if progress else nullcontext()) as bar:
            task = bar.add_task("loading customers", total=len(rows)) if bar else None
            report = importer.import_customers(
                session, csv_text, mode=importer.ImportMode.all_or_nothing,
                region=settings.default_region,
                progress=(lambda n: bar.update(task, completed=n)) if bar else None)
            if not report.committed:
                raise SystemExit(f"demo customers did not validate: {report.errors[:3]}")
            session.commit()
        with transaction(factory) as session:
            for username, role, full_name, language in DEMO_USERS:
                if session.scalar(select(User.id).where(User.username == username)) is None:
                    auth.create_user(session, username=username, password=DEMO_PASSWORD,
                                     role=role, full_name=full_name, language=language)
        created = _demo_tickets(factory, settings)
        __import__("server.dispatch.demo", fromlist=["load"]).load(settings, pbf, progress)
        __import__("server.demo.extras", fromlist=["load"]).load(settings, progress, console)
    finally:
        engine.dispose()
    summary = {"places": len(places), "customers": len(rows), "inserted": report.inserted,
               "updated": report.updated, "tickets_created": created}
    console.print(f"[green]demo loaded[/green]: {summary}")
    console.print("Demo logins (password [bold]" + DEMO_PASSWORD + "[/bold]): "
                  + ", ".join(f"{u} ({r.value})" for u, r, _, _ in DEMO_USERS))
    console.print("Map data © OpenStreetMap contributors, ODbL")
    return summary


def _demo_tickets(factory, settings: Settings) -> int:
    with transaction(factory) as session:
        if session.scalar(select(func.count(Ticket.id))):
            return 0
        agent = session.scalar(select(User).where(User.username == "agent"))
        actor = Principal(agent.id, agent.username, Role.agent)
        policy = tickets.Policy.from_settings(settings)
        points = session.execute(select(ServicePoint.id, ServicePoint.customer_id)
                                 .order_by(ServicePoint.id)).all()
        if not points:
            return 0
        step = max(len(points) // (len(DEMO_TICKETS) + 1), 1)
        now = SystemClock().now()
        for i, (category, priority, text) in enumerate(DEMO_TICKETS):
            sp_id, customer_id = points[(i + 1) * step % len(points)]
            customer = session.get(Customer, customer_id)
            tickets.create(session, TicketIn(
                category=category, priority=priority, description=text, customer_id=customer_id,
                service_point_id=sp_id, reporter_name=customer.name,
                reporter_phone=customer.phones[0].e164 if customer.phones else None),
                actor, now, policy)
        return len(DEMO_TICKETS)
