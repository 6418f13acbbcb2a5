"""Dispatch demo data: the Helsinki road graph and a dozen crews at depots around the centre."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path

from rich.progress import Progress
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.core.clock import SystemClock
from server.core.db import make_engine, make_sessionmaker, transaction
from server.core.schemas import PointIn
from server.crews import service as crews
from server.crews.schemas import CrewIn, FixIn, Shift, Skill
from server.dispatch import roads
from server.models import Crew, CrewMember, Role, User
from server.settings import Settings

# depots and patrol points around central Helsinki (inside the demo extract)
DEPOTS = [
    (24.9384, 60.1699), (24.9415, 60.1712), (24.9460, 60.1680), (24.9502, 60.1702),
    (24.9440, 60.1738), (24.9395, 60.1660), (24.9478, 60.1755), (24.9365, 60.1730),
    (24.9520, 60.1668), (24.9425, 60.1772), (24.9488, 60.1640), (24.9370, 60.1775),
]
SKILL_SETS = [
    [Skill.water_main, Skill.valve], [Skill.meter], [Skill.water_main], [Skill.electrical],
    [Skill.telecom_line], [Skill.valve, Skill.meter], [Skill.water_main, Skill.meter],
    [Skill.electrical, Skill.telecom_line], [Skill.water_main, Skill.valve], [Skill.meter],
    [Skill.water_main], [Skill.valve],
]


def import_roads(settings: Settings, pbf: Path,
                 progress: Callable[[], Progress] | None = None) -> roads.ImportReport:
    engine = make_engine(settings, pool_size=1)
    try:
        with (progress() if progress else nullcontext()) as bar:
            tasks: dict[str, int] = {}

            def report(stage: str, done: int, total: int | None) -> None:
                if bar is None:
                    return
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            ways = roads.read_ways(pbf, report)
            with transaction(make_sessionmaker(engine)) as session:
                return roads.import_network(session, ways, report)
    finally:
        engine.dispose()


def load_crews(session: Session, now: datetime, seed: int = 7) -> int:
    """Create the demo crews once, technicians tech1..3 as members, positions near their depots."""
    if session.scalar(select(Crew.id).limit(1)) is not None:
        return 0
    rng = random.Random(seed)
    techs = session.scalars(select(User).where(User.role == Role.technician.value,
                                               User.username.like("tech%"))
                            .order_by(User.username)).all()
    taken = set(session.scalars(select(CrewMember.user_id)))
    free = [t for t in techs if t.id not in taken]
    for i, ((lon, lat), skills) in enumerate(zip(DEPOTS, SKILL_SETS, strict=True), start=1):
        members = [free[i - 1].id] if i <= len(free) else []
        crew = crews.create(session, CrewIn(
            name=f"Crew {i:02d}", vehicle=f"Van HEL-{100 + i}",
            depot=PointIn(lon=lon, lat=lat), skills=skills,
            shift=Shift.on_shift if i <= 10 else Shift.off, capacity=1 + (i % 3 == 0),
            members=members), now)
        here = FixIn(lon=lon + rng.uniform(-0.0015, 0.0015), lat=lat + rng.uniform(-0.0008, 0.0008),
                     at=now, accuracy_m=8.0)
        crews.record_fixes(session, crew, [here], None, now, max_speed_kmh=250.0)
    return len(DEPOTS)


def load(settings: Settings, pbf: Path, progress: Callable[[], Progress] | None = None) -> dict:
    """Import the road graph and create the demo crews (called by `crewline demo load`)."""
    report = import_roads(settings, pbf, progress)
    engine = make_engine(settings, pool_size=1)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            created = load_crews(session, SystemClock().now())
    finally:
        engine.dispose()
    return {"road_edges": report.edges, "crews_created": created}
