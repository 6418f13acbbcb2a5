"""Fixtures for the server: app with a controllable clock, users of every role, clean tables."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from server.core.clock import ManualClock
from server.settings import Settings

PASSWORD = "correct-horse-battery"
ROLES = ("agent", "dispatcher", "technician", "manager", "admin")
# users are created once per session (argon2 hashing is deliberately slow); everything else is
# emptied before each test
TABLES = (
    "inspection_round_deliveries", "inspection_alerts", "inspection_chain_heads",
    "inspection_records", "inspection_attachments",
    "inspection_round_sites", "inspection_rounds", "inspection_plan_sites", "inspection_plans",
    "inspection_site_profiles", "inspection_checklist_templates", "inspection_site_types",  # inspections
    "device_pairing_failures", "device_pairing_codes",  # devices: pairing
    "device_uplink_seen", "device_attachments", "device_downlink", "device_messages",
    "device_dead_letters", "devices",  # devices
    "dispatch_assignments", "crew_positions", "crew_members", "crews",  # dispatch
    "tag_scans", "tag_events", "tags", "sites",  # tags
    "outage_subscriptions", "outage_tickets", "outage_events", "outages",  # outages
    "sms_messages", "sms_inbound", "sms_opt_outs", "sms_templates",  # notifications
    "ticket_sla_clocks", "ticket_links", "ticket_events", "tickets",  # tickets
    "service_points", "customer_phones", "customers",  # customers
    "procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",  # job queue
)


@pytest.fixture(scope="session")
def settings(pg_url: str) -> Settings:
    return Settings(env="test", database_url=pg_url, secret_key="test-secret-" + "x" * 40,
                    _env_file=None)


@pytest.fixture(scope="session")
def engine(settings: Settings):
    eng = create_engine(settings.database_url)
    with eng.begin() as conn:
        policies = conn.execute(text("SELECT category, priority, assign_minutes, arrive_minutes, "
                                     "resolve_minutes FROM sla_policies")).mappings().all()
    eng.default_policies = [dict(p) for p in policies]  # type: ignore[attr-defined]
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def clean_db(request, engine) -> Iterator[None]:
    """Each server test starts with empty tables and the default SLA policies."""
    if "engine" not in request.fixturenames and "client" not in request.fixturenames:
        yield
        return
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        conn.execute(text("DELETE FROM sla_policies"))
        conn.execute(text("INSERT INTO sla_policies (category, priority, assign_minutes, "
                          "arrive_minutes, resolve_minutes) VALUES (:category, :priority, "
                          ":assign_minutes, :arrive_minutes, :resolve_minutes)"),
                     engine.default_policies)
    yield


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(settings, clock):
    from server.app import create_app

    application = create_app(settings, clock=clock)
    yield application
    application.state.engine.dispose()


@dataclass
class Api:
    """A logged-in HTTP client per role."""

    client: TestClient
    tokens: dict[str, str]
    user_ids: dict[str, int]
    renew: object = None

    def renew_tokens(self) -> None:
        """Log everyone in again (after moving the clock past the token lifetime)."""
        self.tokens = self.renew()

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, role: str, url: str, **kw):
        return self.client.get(url, headers=self.headers(role), **kw)

    def post(self, role: str, url: str, **kw):
        return self.client.post(url, headers=self.headers(role), **kw)

    def put(self, role: str, url: str, **kw):
        return self.client.put(url, headers=self.headers(role), **kw)

    def patch(self, role: str, url: str, **kw):
        return self.client.patch(url, headers=self.headers(role), **kw)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def users(settings, engine) -> dict[str, int]:
    """One user per role, named after the role, password PASSWORD."""
    from sqlalchemy.orm import Session

    from server.auth import service

    with Session(engine) as session:
        ids = {role: service.create_user(session, username=role, password=PASSWORD,
                                         role=role).id for role in ROLES}
        session.commit()
    return ids


@pytest.fixture
def api(app, client, users, clock, settings) -> Api:
    from server.auth.service import issue_token
    from server.models import User

    def tokens() -> dict[str, str]:
        with app.state.sessionmaker() as session:
            return {role: issue_token(session.get(User, uid),
                                      settings.secret_key.get_secret_value(),
                                      settings.access_token_minutes, clock.now())
                    for role, uid in users.items()}

    with app.state.sessionmaker() as session:
        for uid in users.values():  # undo anything a previous test did to them
            session.get(User, uid).is_active = True
        session.commit()
    return Api(client, tokens(), dict(users), tokens)


HELSINKI = {"lon": 24.9384, "lat": 60.1699}


@pytest.fixture
def customer(api) -> dict:
    """A customer with a mobile, a landline and one service point in central Helsinki."""
    r = api.post("manager", "/api/v1/customers", json={
        "account_no": "W-100001", "name": "李明", "phones": ["138 0013 8000", "010-6552 9988"],
        "preferred_language": "zh-CN", "sms_consent": True,
        "service_points": [{"address": "Mannerheimintie 1, Helsinki", "location": HELSINKI}]})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="session")
def second_tech(engine, users) -> int:
    """Another technician (the users of the session are shared: made once)."""
    from sqlalchemy.orm import Session

    from server.auth import service
    from server.models import User

    with Session(engine) as session:
        user = session.query(User).filter_by(username="technician2").one_or_none()
        if user is None:
            user = service.create_user(session, username="technician2", password="x" * 12,
                                       role="technician")
            session.commit()
        return user.id
