"""Customers and service points: the only place that writes their tables."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from server.core.errors import Conflict, NotFound
from server.customers import phones
from server.customers.schemas import CustomerIn
from server.models import Customer, CustomerPhone, ServicePoint
from server.outages.absorb import LOOKUP_OUTAGES  # [outages] "inside outage X, ETR …"

_EAGER = (selectinload(Customer.phones), selectinload(Customer.service_points))


_LOOKUP_SQL = text(f"""
SELECT c.id, c.account_no, c.name, c.preferred_language, c.sms_consent,
  COALESCE((SELECT json_agg(json_build_object('e164', p.e164, 'kind', p.kind) ORDER BY p.id)
              FROM customer_phones p WHERE p.customer_id = c.id), '[]') AS phones,
  COALESCE((SELECT json_agg(json_build_object(
                'id', s.id, 'address', s.address,
                'location', json_build_object('lon', round(ST_X(s.geom)::numeric, 7),
                                              'lat', round(ST_Y(s.geom)::numeric, 7)))
                ORDER BY s.id)
              FROM service_points s WHERE s.customer_id = c.id), '[]') AS service_points,
  COALESCE((SELECT json_agg(json_build_object(
                'id', t.id, 'category', t.category, 'priority', t.priority, 'status', t.status,
                'description', t.description, 'address', t.address,
                'location', CASE WHEN t.location IS NULL THEN NULL ELSE json_build_object(
                    'lon', round(ST_X(t.location)::numeric, 7),
                    'lat', round(ST_Y(t.location)::numeric, 7)) END,
                'created_at', t.created_at, 'sla_level', t.sla_level)
                ORDER BY t.created_at DESC, t.id DESC)
              FROM tickets t WHERE t.customer_id = c.id
               AND t.status IN ('new','assigned','accepted','en_route','on_site')), '[]')
    AS open_tickets,
  {LOOKUP_OUTAGES} AS outages
FROM customers c
WHERE c.id IN (SELECT customer_id FROM customer_phones WHERE e164 = :e164 LIMIT :limit)
ORDER BY c.id
""")


def lookup(session: Session, e164: str, limit: int = 20) -> list[dict]:
    """Caller-ID in one round trip: customers with phones, service points and open tickets."""
    return [dict(row) for row in session.execute(_LOOKUP_SQL, {"e164": e164, "limit": limit})
            .mappings()]


def get(session: Session, customer_id: int) -> Customer:
    c = session.scalar(select(Customer).where(Customer.id == customer_id).options(*_EAGER))
    if c is None:
        raise NotFound(f"customer {customer_id} not found", field="customer_id")
    return c


def search(session: Session, *, account_no: str | None = None, name: str | None = None,
           limit: int = 50) -> list[Customer]:
    q = select(Customer).options(*_EAGER).order_by(Customer.id).limit(limit)
    if account_no:
        q = q.where(Customer.account_no == account_no)
    if name:
        q = q.where(Customer.name.ilike(f"%{name}%"))
    return list(session.scalars(q))


def create(session: Session, data: CustomerIn, region: str) -> Customer:
    numbers = []
    for i, raw in enumerate(data.phones):
        e164 = phones.normalize(raw, region, field=f"phones[{i}]")
        if e164 not in numbers:
            numbers.append(e164)
    customer = Customer(account_no=data.account_no, name=data.name,
                        preferred_language=data.preferred_language, sms_consent=data.sms_consent)
    customer.phones = [CustomerPhone(e164=n, kind=phones.kind(n)) for n in numbers]
    customer.service_points = [ServicePoint(address=sp.address, geom=sp.location.to_wkb())
                               for sp in data.service_points]
    session.add(customer)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"account {data.account_no!r} already exists", field="account_no",
                       code="account_exists") from None
    return customer
