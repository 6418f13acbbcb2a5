"""SMS notifications: the only writer of the sms_* tables. Services never commit.

* Enqueue (``on_ticket_event``, ``on_ticket_assigned``, ``on_outage_*``): one outbox row per
  message, written in the caller's transaction, so nothing is sent for work that rolled back.
  ``dedupe_key`` (subject, template, hash of recipient and text) makes an identical repeat a no-op.
* The send loop (``server.notifications.outbox``) owns its transactions and calls ``claim_due``,
  ``record_*`` and ``reconcile_*`` here.
* Webhooks: ``apply_status_callback`` (never moves a message backwards) and ``handle_inbound``
  (opt-out/opt-in, HELP, survey score, Y/N).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from server.core import sqlplan
from server.core.errors import InvalidInput
from server.core.sqlplan import Plan, Step
from server.customers import phones
from server.models import Ticket
from server.models.notifications import SmsInbound, SmsMessage, SmsTemplate
from server.notifications import templates
from server.notifications.templates import TemplateKey, TemplateRejected
from sms_gateway import (
    InboundSms,
    MessageStatus,
    PermanentSmsError,
    ProviderAuthError,
    RecipientOptedOutError,
    ReplyIntent,
    SendResult,
    SmsSendError,
    StatusCallback,
    TransientSmsError,
    mask_phone_number,
)

log = structlog.get_logger()

# Ticket events (tickets.service._apply / create) that tell the customer something.
TICKET_EVENT_TEMPLATES = {
    "created": TemplateKey.ticket_received,
    "en_route": TemplateKey.crew_arriving,
    "resolved": TemplateKey.ticket_resolved,
}


@dataclass(frozen=True)
class SmsPolicy:
    """The send loop's knobs, from settings."""

    timezone: str = "Asia/Shanghai"
    quiet_start: time | None = time(21, 0)
    quiet_end: time | None = time(8, 0)
    max_attempts: int = 8
    lease_seconds: float = 120.0
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0
    public_base_url: str = "http://127.0.0.1:8080"

    @classmethod
    def from_settings(cls, settings) -> SmsPolicy:
        start, end = _hhmm(settings.sms_quiet_start), _hhmm(settings.sms_quiet_end)
        ZoneInfo(settings.sms_timezone)  # fail at start-up, not at the first message
        quiet = start != end
        return cls(timezone=settings.sms_timezone, quiet_start=start if quiet else None,
                   quiet_end=end if quiet else None, max_attempts=settings.sms_max_attempts,
                   lease_seconds=settings.sms_sending_lease_seconds,
                   public_base_url=settings.public_base_url.rstrip("/"))

    def quiet_until(self, now: datetime) -> datetime | None:
        """When quiet hours covering ``now`` end, or ``None`` if ``now`` is not quiet."""
        if self.quiet_start is None or self.quiet_end is None:
            return None
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        t = local.time()
        if self.quiet_start < self.quiet_end:
            quiet = self.quiet_start <= t < self.quiet_end
        else:  # across midnight, e.g. 21:00-08:00
            quiet = t >= self.quiet_start or t < self.quiet_end
        if not quiet:
            return None
        end = datetime.combine(local.date(), self.quiet_end, tzinfo=zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.quiet_end, tzinfo=zone)
        return end

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_max_seconds,
                                     self.backoff_base_seconds * 2 ** max(0, attempts - 1)))

    def status_callback(self, message_id: int) -> str:
        return f"{self.public_base_url}/api/v1/sms/status?ref={message_id}"


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _dedupe_key(subject: str, template: str, to: str, body: str) -> str:
    digest = hashlib.md5(f"{to}|{body}".encode(), usedforsecurity=False).hexdigest()
    return f"{subject}:{template}:{digest}"


# -- enqueue -----------------------------------------------------------------------------------

_TICKET_RECIPIENT = text("""
SELECT t.id, t.priority, t.language, t.reporter_phone, t.customer_id, c.sms_consent,
       (SELECT p.e164 FROM customer_phones p
         WHERE p.customer_id = t.customer_id AND p.kind = 'mobile' ORDER BY p.id LIMIT 1)
         AS customer_mobile,
       (SELECT s.body FROM sms_templates s WHERE s.key = :template AND s.language = t.language)
         AS custom_body
FROM tickets t LEFT JOIN customers c ON c.id = t.customer_id
WHERE t.id = :ticket_id
""")

def insert_sql(p: str = "", source: str = "") -> str:
    """The outbox INSERT of one ticket SMS; the rules it holds: opt-outs and a refused consent
    queue the row as suppressed, an identical repeat (dedupe key) is a no-op. Binds the keys of
    :func:`ticket_sms` prefixed with ``p``, and ``:now``. ``source``: what follows the SELECT
    (``FROM x WHERE …``), for the intake that runs it as a CTE of its statement."""
    return f"""
INSERT INTO sms_messages (ticket_id, customer_id, outage_ref, to_e164, language, template, body,
    encoding, segments, urgent, dedupe_key, status, error_code, attempts, next_attempt_at,
    created_at, updated_at)
SELECT CAST(:{p}ticket_id AS bigint), CAST(:{p}customer_id AS bigint), NULL,
    CAST(:{p}to AS varchar), CAST(:{p}language AS varchar), CAST(:{p}template AS varchar),
    CAST(:{p}body AS text), CAST(:{p}encoding AS varchar), CAST(:{p}segments AS smallint),
    CAST(:{p}urgent AS boolean), CAST(:{p}dedupe_key AS varchar),
    CASE WHEN CAST(:{p}no_consent AS boolean)
              OR EXISTS (SELECT 1 FROM sms_opt_outs o WHERE o.e164 = CAST(:{p}to AS varchar))
         THEN 'suppressed' ELSE 'pending' END,
    CASE WHEN CAST(:{p}no_consent AS boolean) THEN 'no_consent'
         WHEN EXISTS (SELECT 1 FROM sms_opt_outs o WHERE o.e164 = CAST(:{p}to AS varchar))
         THEN 'opted_out' END,
    0, :now, :now, :now
{source}
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id"""


_INSERT = text(insert_sql())


def _is_mobile(e164: str | None) -> bool:
    if not e164:
        return False
    try:
        return phones.kind(e164) == "mobile"
    except Exception:  # not parseable: the provider would refuse it anyway
        return False


@dataclass(frozen=True)
class TicketRecipient:
    """What a ticket's SMS needs to know: who may be texted, in which language, with which
    template override."""

    ticket_id: int
    customer_id: int | None
    language: str
    priority: str
    reporter_phone: str | None
    customer_mobile: str | None
    consent: bool | None  # the customer's SMS consent; None without a customer
    override: str | None  # the staff's template text for the key and language, if any


def _queue_ticket_sms(session: Session, r: TicketRecipient, key: TemplateKey, now: datetime,
                      values: dict[str, str] | None = None) -> int | None:
    return sqlplan.run(session, _ticket_sms_plan(r, key, now, values))


def ticket_sms(r: TicketRecipient, key: TemplateKey,
               values: dict[str, str] | None = None) -> dict | None:
    """The rules of every ticket SMS before its INSERT (:func:`insert_sql`): the reporter's
    mobile first, then the customer's; the text in the ticket's language (zh-CN if it has
    none), with the staff's override; the customer's consent; one identical message per ticket.
    The INSERT's parameters (without ``now``), or ``None`` when there is nobody to text."""
    to = next((n for n in (r.reporter_phone, r.customer_mobile) if _is_mobile(n)), None)
    if to is None:
        return None
    language = r.language if r.language in templates.LANGUAGES else "zh-CN"
    rendered = templates.render(key, language,
                                {"number": f"CL-{r.ticket_id:07d}", **(values or {})},
                                override=r.override)
    return {
        "ticket_id": r.ticket_id, "customer_id": r.customer_id, "to": to, "language": language,
        "template": key.value, "body": rendered.body, "encoding": rendered.encoding,
        "segments": rendered.segments,
        "urgent": key in templates.URGENT or r.priority == "emergency",
        "dedupe_key": _dedupe_key(f"ticket:{r.ticket_id}", key.value, to, rendered.body),
        "no_consent": r.consent is False}


def _ticket_sms_plan(r: TicketRecipient, key: TemplateKey, now: datetime,
                     values: dict[str, str] | None = None) -> Plan[int | None]:
    """Queue a ticket SMS (:func:`ticket_sms`). Returns the outbox id (``None`` if nobody to
    text or a repeat)."""
    params = ticket_sms(r, key, values)
    if params is None:
        return None
    row = yield Step(_INSERT, {**params, "now": now})
    return row.id if row is not None else None


def enqueue_for_ticket(session: Session, ticket_id: int, key: TemplateKey, now: datetime,
                       values: dict[str, str] | None = None) -> int | None:
    """Queue ``key`` for the ticket's reporter (or its customer's mobile). Returns the outbox id,
    or ``None`` when there is nobody to text or the identical message was queued before."""
    row = session.execute(_TICKET_RECIPIENT, {"ticket_id": ticket_id,
                                              "template": key.value}).one_or_none()
    if row is None:
        return None
    return _queue_ticket_sms(session, TicketRecipient(
        row.id, row.customer_id, row.language, row.priority, row.reporter_phone,
        row.customer_mobile, row.sms_consent, row.custom_body), key, now, values)


class TemplateOverrides:
    """The staff's texts (sms_templates) of one template, by language, cached per process for
    the ticket intake, which renders the "received" SMS before its one statement. The statement
    checks that the override it was rendered with is still the stored one
    (:func:`receipt_cte`); if not it fails with :data:`TEMPLATE_CHANGED` having written nothing,
    and the intake reads the texts again (``load(refresh=True)``) and tries once more."""

    def __init__(self, key: TemplateKey) -> None:
        self.key = key
        self._bodies: dict[str, str] | None = None

    def load(self, *, refresh: bool = False) -> Plan[dict[str, str]]:
        """A sub-plan: the overrides by language, read when not cached or when ``refresh``
        (after the statement found the cache stale: read now, not whatever a concurrent reader
        that started before the change stored meanwhile)."""
        bodies = None if refresh else self._bodies
        if bodies is None:
            row = yield Step(_OVERRIDES, {"key": self.key.value}, writes=False)
            bodies = self._bodies = dict(row.bodies)
        return bodies


_OVERRIDES = text("""
SELECT COALESCE(json_object_agg(language, body), '{}') AS bodies FROM sms_templates
WHERE key = :key
""")

# SQLSTATE of sms_template_unchanged() (migration 0202_intake_statement): the stored override
# is not the one the message was rendered with.
TEMPLATE_CHANGED = "CL001"


def receipt_cte(source: str) -> str:
    """The "ticket received" SMS as an INSERT for a CTE of the intake statement: one row per row
    of ``source`` (the inserted ticket), with :func:`receipt_params`'s parameters; the whole
    statement fails (TEMPLATE_CHANGED) if the staff's override is not the one rendered with."""
    return insert_sql("sms_", f"""FROM {source}
WHERE sms_template_unchanged('{TemplateKey.ticket_received.value}',
        CAST(:sms_template_language AS varchar), CAST(:sms_override AS text))""")


def receipt_params(r: TicketRecipient) -> dict | None:
    """The parameters of :func:`receipt_cte` for the new ticket ``r`` (``r.override`` from
    :class:`TemplateOverrides`), or ``None`` when there is nobody to text."""
    params = ticket_sms(r, TemplateKey.ticket_received)
    if params is None:
        return None
    return {**{f"sms_{k}": v for k, v in params.items()},
            "sms_template_language": r.language, "sms_override": r.override}


def on_ticket_event(session: Session, ticket_id: int, kind: str, now: datetime) -> int | None:
    """Called by the tickets service in its transaction for every ticket event; queues the
    customer's SMS for the events that have one (created, en_route, resolved)."""
    key = TICKET_EVENT_TEMPLATES.get(kind)
    return enqueue_for_ticket(session, ticket_id, key, now) if key else None


def on_ticket_assigned(session: Session, ticket_id: int, eta_seconds: float | None,
                       now: datetime, *, timezone: str = "Asia/Shanghai",
                       crew_id: int | None = None) -> int | None:
    """Called by dispatch in its transaction: the customer hears "crew assigned, arriving in
    about N minutes" (when there is an ETA); the crew's technicians who have a phone hear of
    the new job. Returns the customer's outbox id."""
    customer_message = None
    if eta_seconds is not None:
        if eta_seconds < 0:
            raise InvalidInput("eta_seconds must be >= 0", field="eta_seconds")
        eta = now + timedelta(seconds=eta_seconds)
        minutes = max(1, round(eta_seconds / 60))
        customer_message = enqueue_for_ticket(session, ticket_id, TemplateKey.crew_assigned, now, {
            "eta_minutes": str(minutes),
            "eta_time": eta.astimezone(ZoneInfo(timezone)).strftime("%H:%M")})
    if crew_id is not None:
        _notify_crew(session, ticket_id, crew_id, now)
    return customer_message


_CREW_PHONES = text("""
SELECT u.phone, u.language, t.priority, t.address, t.id AS ticket_id,
       (SELECT s.body FROM sms_templates s WHERE s.key = 'staff_assigned'
         AND s.language = u.language) AS custom_body
FROM crew_members m JOIN users u ON u.id = m.user_id, tickets t
WHERE m.crew_id = :crew_id AND t.id = :ticket_id AND u.is_active AND u.phone IS NOT NULL
ORDER BY u.id
""")
_PRIORITY_WORDS = {"zh-CN": {"emergency": "紧急", "high": "高", "normal": "普通", "low": "低"},
                   "en": {}}


def _notify_crew(session: Session, ticket_id: int, crew_id: int, now: datetime) -> list[int]:
    """"New job for your crew" to each active member with a mobile (opt-outs still apply)."""
    queued = []
    for row in session.execute(_CREW_PHONES, {"crew_id": crew_id, "ticket_id": ticket_id}):
        if not _is_mobile(row.phone):
            continue
        language = row.language if row.language in templates.LANGUAGES else "zh-CN"
        rendered = templates.render(TemplateKey.staff_assigned, language, {
            "number": f"CL-{row.ticket_id:07d}",
            "priority": _PRIORITY_WORDS[language].get(row.priority, row.priority),
            "address": row.address or "-"}, override=row.custom_body)
        key = TemplateKey.staff_assigned.value
        message_id = session.execute(_INSERT, {
            "ticket_id": ticket_id, "customer_id": None, "to": row.phone, "language": language,
            "template": key, "body": rendered.body, "encoding": rendered.encoding,
            "segments": rendered.segments, "urgent": row.priority == "emergency",
            "dedupe_key": _dedupe_key(f"ticket:{ticket_id}", key, row.phone, rendered.body),
            "no_consent": False, "now": now}).scalar_one_or_none()
        if message_id is not None:
            queued.append(message_id)
    return queued


# Outage messages go to (customer_id, e164, language, consent) rows; one message per number.
# (Each customer's first mobile by a join and DISTINCT ON rather than a LATERAL probe per
# customer: a whole district is hashed, a handful of customers still probed by index.)
_CUSTOMER_RECIPIENTS = """
SELECT * FROM (
  SELECT DISTINCT ON (c.id) c.id AS customer_id, p.e164, c.preferred_language AS language,
         c.sms_consent AS consent
  FROM customers c JOIN customer_phones p ON p.customer_id = c.id AND p.kind = 'mobile'
  WHERE {where}
  ORDER BY c.id, p.id) first_mobile"""

_OUTAGE_INSERT = """
INSERT INTO sms_messages (ticket_id, customer_id, outage_ref, to_e164, language, template, body,
    encoding, segments, urgent, dedupe_key, status, error_code, attempts, next_attempt_at,
    created_at, updated_at)
SELECT NULL, r.customer_id, CAST(:ref AS text), r.e164, l.language, CAST(:template AS text),
    l.body, l.encoding, l.segments, CAST(:urgent AS boolean),
    'outage:' || CAST(:ref AS text) || ':' || CAST(:template AS text) || ':' || {key_tail},
    CASE WHEN NOT r.consent OR o.e164 IS NOT NULL THEN 'suppressed' ELSE 'pending' END,
    CASE WHEN NOT r.consent THEN 'no_consent' WHEN o.e164 IS NOT NULL THEN 'opted_out' END,
    0, :now, :now, :now
FROM ({recipients}) r
JOIN (VALUES ('zh-CN', CAST(:body_zh AS text), CAST(:enc_zh AS text), CAST(:seg_zh AS smallint)),
             ('en', CAST(:body_en AS text), CAST(:enc_en AS text), CAST(:seg_en AS smallint)))
     AS l(language, body, encoding, segments) ON l.language = r.language
LEFT JOIN sms_opt_outs o ON o.e164 = r.e164
ON CONFLICT (dedupe_key) DO NOTHING
"""


@dataclass(frozen=True)
class OutageRecipients:
    """Recipients chosen in SQL, so a whole area is queued by one INSERT … SELECT.

    ``customers``: a subquery returning customer ids (each gets one message on their first
    mobile, in their language, if they consent). ``numbers``: optionally a subquery returning
    ``(e164, language, customer_id)`` rows of numbers that asked for updates themselves (the IVR's
    "press 1"): that request is their consent, while an opt-out (STOP) still suppresses. A number
    in both gets one message. ``params`` binds both subqueries."""

    customers: str
    numbers: str | None = None
    params: dict | None = None


def _recipients_sql(recipients: list[int] | OutageRecipients) -> tuple[str, dict]:
    if not isinstance(recipients, OutageRecipients):
        return (_CUSTOMER_RECIPIENTS.format(where="c.id = ANY(:customer_ids)"),
                {"customer_ids": list(recipients)})
    where = f"c.id IN ({recipients.customers})"
    if not recipients.numbers:
        return _CUSTOMER_RECIPIENTS.format(where=where), dict(recipients.params or {})
    # a number's own request (consent) wins over a customer's refusal: those numbers come from
    # the second part only (no sort over the whole area to pick one row per number)
    numbers = f"({recipients.numbers}) AS n(e164, language, customer_id)"
    sql = (_CUSTOMER_RECIPIENTS.format(where=where)
           + f" WHERE NOT EXISTS (SELECT 1 FROM {numbers} WHERE n.e164 = first_mobile.e164)"
           + f" UNION ALL SELECT n.customer_id, n.e164, n.language, true FROM {numbers}")
    return sql, dict(recipients.params or {})


def _enqueue_outage(session: Session, key: TemplateKey, outage_ref: str,
                    recipients: list[int] | OutageRecipients, values: dict[str, str],
                    now: datetime, *, revision: str | None = None, urgent: bool = True) -> int:
    if not outage_ref or len(outage_ref) > 64:
        raise InvalidInput("outage_ref must be 1-64 characters", field="outage_ref")
    if revision is not None and not (0 < len(revision) <= 16):
        raise InvalidInput("revision must be 1-16 characters", field="revision")
    overrides = dict(session.execute(select(SmsTemplate.language, SmsTemplate.body)
                                     .where(SmsTemplate.key == key.value)).all())
    recipients_sql, params = _recipients_sql(recipients)
    params |= {"ref": outage_ref, "template": key.value, "now": now, "urgent": urgent}
    if revision is not None:
        params["revision"] = revision
    for language, suffix in (("zh-CN", "zh"), ("en", "en")):
        rendered = templates.render(key, language, values, override=overrides.get(language))
        params |= {f"body_{suffix}": rendered.body, f"enc_{suffix}": rendered.encoding,
                   f"seg_{suffix}": rendered.segments}
    # Without a revision, no identical text twice; with one (the outage's own counter), exactly
    # one message per number and revision, whatever the text (a retried change sends nothing).
    key_tail = ("md5(r.e164 || '|' || l.body)" if revision is None
                else "CAST(:revision AS text) || ':' || md5(r.e164)")
    sql = _OUTAGE_INSERT.format(recipients=recipients_sql, key_tail=key_tail)
    # a whole area in one statement: room to hash its customers in memory (this transaction only)
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    return session.execute(text(sql), params).rowcount


def on_outage_notice(session: Session, outage_ref: str,
                     customer_ids: list[int] | OutageRecipients, *, area: str, etr: str,
                     now: datetime, revision: str | None = None) -> int:
    """Queue the outage notice for the customers of an outage (sent in quiet hours too)."""
    return _enqueue_outage(session, TemplateKey.outage_notice, outage_ref, customer_ids,
                           {"area": area, "etr": etr}, now, revision=revision)


def on_planned_notice(session: Session, outage_ref: str,
                      customer_ids: list[int] | OutageRecipients, *, area: str, start: str,
                      etr: str, now: datetime, urgent: bool = False,
                      revision: str | None = None) -> int:
    """Queue the advance notice of planned maintenance. Not urgent (held in quiet hours) unless
    the caller says the work starts before the quiet hours end."""
    return _enqueue_outage(session, TemplateKey.planned_notice, outage_ref, customer_ids,
                           {"area": area, "start": start, "etr": etr}, now, revision=revision,
                           urgent=urgent)


def on_etr_change(session: Session, outage_ref: str,
                  customer_ids: list[int] | OutageRecipients, *, area: str, etr: str,
                  now: datetime, revision: str | None = None) -> int:
    """Queue "new expected restoration time" (a changed ``etr`` or ``revision`` is a new
    message)."""
    return _enqueue_outage(session, TemplateKey.etr_change, outage_ref, customer_ids,
                           {"area": area, "etr": etr}, now, revision=revision)


def on_restoration(session: Session, outage_ref: str,
                   customer_ids: list[int] | OutageRecipients, *, area: str, now: datetime,
                   revision: str | None = None) -> int:
    """Queue "supply restored"."""
    return _enqueue_outage(session, TemplateKey.restoration, outage_ref, customer_ids,
                           {"area": area}, now, revision=revision)


# -- consent -----------------------------------------------------------------------------------

def opt_out(session: Session, e164: str, now: datetime, *, source: str,
            keyword: str | None = None) -> None:
    """Stop all SMS to ``e164``: record it, withdraw the consent of every customer with that
    number, and suppress what is still queued for it."""
    session.execute(text("""
        INSERT INTO sms_opt_outs (e164, source, keyword, opted_out_at)
        VALUES (:e164, :source, :keyword, :now)
        ON CONFLICT (e164) DO UPDATE SET source = EXCLUDED.source, keyword = EXCLUDED.keyword,
                                        opted_out_at = EXCLUDED.opted_out_at"""),
                    {"e164": e164, "source": source, "keyword": keyword, "now": now})
    session.execute(text("""
        UPDATE customers SET sms_consent = false, updated_at = :now
        WHERE id IN (SELECT customer_id FROM customer_phones WHERE e164 = :e164)
          AND sms_consent"""), {"e164": e164, "now": now})
    session.execute(text("""
        UPDATE sms_messages SET status = 'suppressed', error_code = 'opted_out', updated_at = :now
        WHERE to_e164 = :e164 AND status = 'pending'"""), {"e164": e164, "now": now})
    log.info("sms opt-out", to=mask_phone_number(e164), source=source)


def opt_in(session: Session, e164: str, now: datetime) -> None:
    """START / UNSTOP: the number and its customers may get SMS again (queued-then-suppressed
    messages stay suppressed: they are stale)."""
    session.execute(text("DELETE FROM sms_opt_outs WHERE e164 = :e164"), {"e164": e164})
    session.execute(text("""
        UPDATE customers SET sms_consent = true, updated_at = :now
        WHERE id IN (SELECT customer_id FROM customer_phones WHERE e164 = :e164)
          AND NOT sms_consent"""), {"e164": e164, "now": now})
    log.info("sms opt-in", to=mask_phone_number(e164))


# -- the send loop's steps -----------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    id: int
    to: str
    body: str
    token: uuid.UUID
    attempts: int


_DUE = text("""
SELECT m.id, m.to_e164, m.body, m.urgent, m.attempts,
       EXISTS (SELECT 1 FROM sms_opt_outs o WHERE o.e164 = m.to_e164) AS opted_out,
       COALESCE((SELECT NOT c.sms_consent FROM customers c WHERE c.id = m.customer_id), false)
         AS no_consent
FROM sms_messages m
WHERE m.status = 'pending' AND m.next_attempt_at <= :now
ORDER BY m.next_attempt_at, m.id
LIMIT :limit
FOR UPDATE OF m SKIP LOCKED
""")


class Claims(list[Claim]):
    """The claimed messages; ``seen`` also counts the due rows suppressed or held back."""

    seen: int = 0


def claim_due(session: Session, now: datetime, policy: SmsPolicy, limit: int) -> Claims:
    """Lock due messages (SKIP LOCKED: concurrent loops never share one) and mark the sendable
    ones 'sending' with a fresh attempt token; the caller commits BEFORE calling the provider."""
    claims = Claims()
    suppressed: list[dict] = []
    deferred: list[dict] = []
    quiet_until = policy.quiet_until(now)
    for row in session.execute(_DUE, {"now": now, "limit": limit}):
        claims.seen += 1
        if row.opted_out or row.no_consent:
            suppressed.append({"id": row.id, "code": "opted_out" if row.opted_out
                               else "no_consent"})
        elif quiet_until is not None and not row.urgent:
            deferred.append({"id": row.id, "until": quiet_until})
        else:
            claims.append(Claim(row.id, row.to_e164, row.body, uuid.uuid4(), row.attempts + 1))
    if suppressed:
        session.execute(text("UPDATE sms_messages SET status = 'suppressed', error_code = :code, "
                             "updated_at = :now WHERE id = :id"),
                        [{**s, "now": now} for s in suppressed])
    if deferred:
        session.execute(text("UPDATE sms_messages SET next_attempt_at = :until, "
                             "error_code = 'quiet_hours', updated_at = :now WHERE id = :id"),
                        [{**d, "now": now} for d in deferred])
    if claims:
        session.execute(text("UPDATE sms_messages SET status = 'sending', attempt_token = :token, "
                             "claimed_at = :now, attempts = :attempts, updated_at = :now "
                             "WHERE id = :id"),
                        [{"id": c.id, "token": c.token, "attempts": c.attempts, "now": now}
                         for c in claims])
    return claims


def _our_status(status: MessageStatus) -> str:
    if status in (MessageStatus.DELIVERED, MessageStatus.READ,
                  MessageStatus.PARTIALLY_DELIVERED):
        return "delivered"
    if status is MessageStatus.UNDELIVERED:
        return "undelivered"
    if status in (MessageStatus.FAILED, MessageStatus.CANCELED):
        return "failed"
    return "sent"


def _advance(message: SmsMessage, status: MessageStatus, now: datetime,
             error_code: int | None = None) -> bool:
    """Apply a provider status unless it would move the message backwards."""
    if message.provider_status is not None:
        try:
            previous = MessageStatus(message.provider_status)
        except ValueError:
            previous = MessageStatus.QUEUED
        if not status.supersedes(previous):
            return False
    message.provider_status = status.value
    message.status = _our_status(status)
    message.claimed_at = None
    message.updated_at = now
    if message.sent_at is None:
        message.sent_at = now
    if message.status == "delivered":
        message.delivered_at = now
    if error_code is not None:
        message.error_code = f"provider_{error_code}"
    return True


def _locked_claim(session: Session, claim: Claim) -> SmsMessage | None:
    message = session.get(SmsMessage, claim.id, with_for_update=True)
    if message is None or message.attempt_token != claim.token:
        # Reconciled or reclaimed meanwhile (only possible if the lease is shorter than a send).
        log.warning("sms claim lost", message_id=claim.id)
        return None
    return message


def record_sent(session: Session, claim: Claim, result: SendResult, now: datetime) -> bool:
    message = _locked_claim(session, claim)
    if message is None:
        return False
    message.provider = result.provider
    message.provider_message_id = result.message_id
    message.error_code = message.last_error = None
    if not _advance(message, result.status, now, result.error_code):
        message.claimed_at = None  # a callback got here first and said more
    return True


def record_failure(session: Session, claim: Claim, exc: SmsSendError, now: datetime,
                   policy: SmsPolicy) -> str:
    """Book a failed attempt; returns what happens next: retry, failed, unknown or paused."""
    message = _locked_claim(session, claim)
    if message is None:
        return "lost"
    message.error_code, message.last_error = exc.code, str(exc)[:500]
    message.updated_at = now
    if isinstance(exc, TransientSmsError) and exc.outcome_unknown:
        # Maybe accepted: stay 'sending'; reconcile looks it up after the lease, never resends
        # blindly.
        return "unknown"
    if isinstance(exc, ProviderAuthError):
        # Our credentials, not the message: put it back untouched and stop the loop.
        message.status, message.attempts = "pending", message.attempts - 1
        message.next_attempt_at, message.claimed_at = now + timedelta(minutes=1), None
        return "paused"
    if isinstance(exc, PermanentSmsError):
        message.status, message.claimed_at = "failed", None
        if isinstance(exc, RecipientOptedOutError):
            opt_out(session, message.to_e164, now, source="provider")
        return "failed"
    if message.attempts >= policy.max_attempts:
        message.status, message.claimed_at = "failed", None
        message.error_code = "too_many_attempts"
        return "failed"
    message.status, message.claimed_at = "pending", None
    message.next_attempt_at = now + policy.backoff(message.attempts)
    return "retry"


def release(session: Session, claims: list[Claim], now: datetime) -> None:
    """Give back claims that were never handed to the provider."""
    session.execute(text("UPDATE sms_messages SET status = 'pending', attempts = attempts - 1, "
                         "attempt_token = NULL, claimed_at = NULL, updated_at = :now "
                         "WHERE id = :id AND attempt_token = :token AND status = 'sending'"),
                    [{"id": c.id, "token": c.token, "now": now} for c in claims])


def stale_claims(session: Session, now: datetime, policy: SmsPolicy, limit: int = 100
                 ) -> list[SmsMessage]:
    """Messages left 'sending' longer than the lease (the loop died, or the answer was lost)."""
    return list(session.scalars(
        select(SmsMessage).where(SmsMessage.status == "sending",
                                 SmsMessage.claimed_at < now - timedelta(
                                     seconds=policy.lease_seconds))
        .order_by(SmsMessage.claimed_at).limit(limit).with_for_update(skip_locked=True)))


def reconcile(message: SmsMessage, found: SendResult | None, now: datetime) -> str:
    """Settle a stale claim with what the provider knows: found -> sent (no resend);
    not found -> pending, to be sent again now."""
    if found is not None:
        message.provider = found.provider
        message.provider_message_id = found.message_id
        message.error_code, message.last_error = None, None
        _advance(message, found.status, now, found.error_code)
        message.claimed_at = None
        return "found"
    message.status, message.claimed_at, message.next_attempt_at = "pending", None, now
    message.error_code, message.updated_at = "reconciled_unsent", now
    return "resend"


# -- webhooks ----------------------------------------------------------------------------------

def apply_status_callback(session: Session, callback: StatusCallback, ref: int | None,
                          now: datetime) -> str:
    """Update the message the callback is about; never backwards. ``ref`` (our id, carried in
    the callback URL) attaches the provider id to a message whose send was not recorded."""
    message = session.scalar(select(SmsMessage).where(
        SmsMessage.provider_message_id == callback.message_id).with_for_update())
    if message is None and ref is not None:
        message = session.scalar(select(SmsMessage).where(
            SmsMessage.id == ref, SmsMessage.provider_message_id.is_(None),
            SmsMessage.status.in_(("sending", "pending"))).with_for_update())
        if message is not None:
            message.provider_message_id = callback.message_id
            message.provider = "twilio"
    if message is None:
        log.info("sms status for an unknown message", provider_message_id=callback.message_id)
        return "unknown_message"
    return "updated" if _advance(message, callback.status, now, callback.error_code) \
        else "stale"


@dataclass(frozen=True)
class InboundOutcome:
    action: str
    reply: str | None
    ticket_id: int | None = None
    duplicate: bool = False


_SURVEY_TICKET = text("""
SELECT m.ticket_id FROM sms_messages m JOIN tickets t ON t.id = m.ticket_id
WHERE m.to_e164 = :e164 AND m.template = 'ticket_resolved'
  AND m.status IN ('sent', 'delivered') AND t.status IN ('resolved', 'closed')
ORDER BY m.id DESC LIMIT 1
""")


def _reply_language(session: Session, e164: str) -> str:
    language = session.execute(text("""
        SELECT c.preferred_language FROM customers c JOIN customer_phones p
          ON p.customer_id = c.id WHERE p.e164 = :e164 ORDER BY c.id LIMIT 1"""),
        {"e164": e164}).scalar_one_or_none()
    language = language or session.execute(text(
        "SELECT language FROM sms_messages WHERE to_e164 = :e164 ORDER BY id DESC LIMIT 1"),
        {"e164": e164}).scalar_one_or_none()
    return language or "zh-CN"


def _reply(session: Session, key: TemplateKey, e164: str) -> str:
    language = _reply_language(session, e164)
    override = session.scalar(select(SmsTemplate.body).where(
        SmsTemplate.key == key.value, SmsTemplate.language == language))
    return templates.render(key, language, {}, override=override).body


def handle_inbound(session: Session, inbound: InboundSms, now: datetime,
                   ticket_policy=None) -> InboundOutcome:
    """Act on a customer's text once (a redelivered webhook is recognised by its MessageSid).
    ``ticket_policy`` (tickets.service.Policy) restarts the SLA clocks of a ticket an N reopens."""
    if ticket_policy is None:
        from server.tickets.service import Policy

        ticket_policy = Policy()
    seen = session.scalar(select(SmsInbound).where(
        SmsInbound.provider_message_id == inbound.message_id))
    if seen is not None:
        return InboundOutcome(seen.action, None, seen.ticket_id, duplicate=True)
    sender = inbound.sender
    intent = inbound.intent
    ticket_id: int | None = None
    reply: str | None = None
    if intent is ReplyIntent.OPT_OUT:
        opt_out(session, sender, now, source="keyword", keyword=inbound.body.strip()[:32])
        action = "opted_out"
    elif intent is ReplyIntent.OPT_IN:
        opt_in(session, sender, now)
        action, reply = "opted_in", _reply(session, TemplateKey.opted_in, sender)
    elif intent is ReplyIntent.HELP:
        action, reply = "help", _reply(session, TemplateKey.help_reply, sender)
    elif intent.satisfaction_score is not None or intent in (ReplyIntent.CONFIRM_YES,
                                                             ReplyIntent.CONFIRM_NO):
        ticket_id = session.execute(_SURVEY_TICKET, {"e164": sender}).scalar_one_or_none()
        if ticket_id is None:
            action = "no_survey"
        else:
            action = _record_on_ticket(session, ticket_id, intent, now, inbound, ticket_policy)
    else:
        action = "ignored"
    session.add(SmsInbound(provider_message_id=inbound.message_id, from_e164=sender,
                           to_number=inbound.to[:32], body=inbound.body, intent=intent.value,
                           action=action, ticket_id=ticket_id, received_at=now))
    session.flush()
    log.info("sms inbound", sender=mask_phone_number(sender), intent=intent.value, action=action)
    return InboundOutcome(action, reply, ticket_id)


def _record_on_ticket(session: Session, ticket_id: int, intent: ReplyIntent, now: datetime,
                      inbound: InboundSms, ticket_policy) -> str:
    # The audit trail is the tickets domain's: its own event helper writes the row.
    from server.tickets.service import _event as ticket_event

    ticket = session.get(Ticket, ticket_id)
    score = intent.satisfaction_score
    if score is not None:
        kind, data, action = "sms_survey", {"score": score}, "survey_recorded"
    elif intent is ReplyIntent.CONFIRM_YES:
        kind, data, action = "sms_confirmation", {"resolved": True}, "confirmed_resolved"
    else:
        kind, data, action = "sms_confirmation", {"resolved": False}, "reported_unresolved"
    ticket_event(session, ticket, None, kind, now, note=inbound.body.strip()[:200],
                 data={**data, "provider_message_id": inbound.message_id})
    if intent is ReplyIntent.CONFIRM_NO:
        from server.tickets.service import reopen_on_customer_reply

        if reopen_on_customer_reply(session, ticket_id, now, ticket_policy,
                                    note="reopened: the customer replied that it is not solved"):
            action = "reopened"
    return action


# -- staff: messages and templates -------------------------------------------------------------

def list_messages(session: Session, *, ticket_id: int | None = None, status: str | None = None,
                  before_id: int | None = None, limit: int = 50) -> list[SmsMessage]:
    q = select(SmsMessage).order_by(SmsMessage.id.desc()).limit(limit)
    if ticket_id is not None:
        q = q.where(SmsMessage.ticket_id == ticket_id)
    if status is not None:
        q = q.where(SmsMessage.status == status)
    if before_id is not None:
        q = q.where(SmsMessage.id < before_id)
    return list(session.scalars(q))


def list_templates(session: Session) -> list[dict]:
    custom = {(t.key, t.language): t for t in session.scalars(select(SmsTemplate))}
    out = []
    for key in TemplateKey:
        for language in templates.LANGUAGES:
            row = custom.get((key.value, language))
            body = row.body if row else templates.DEFAULTS[key][language]
            out.append({"key": key.value, "language": language, "body": body,
                        "placeholders": list(templates.PLACEHOLDERS[key]),
                        "custom": row is not None, "urgent": key in templates.URGENT})
    return out


def save_template(session: Session, key: TemplateKey, language: str, body: str,
                  segment_budget: int, user_id: int, now: datetime) -> dict:
    """Store a staff-edited text; refused (422) if malformed or over the segment budget."""
    if language not in templates.LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(templates.LANGUAGES)}",
                           field="language")
    try:
        worst = templates.check(key, language, body, segment_budget)
    except TemplateRejected as exc:
        raise InvalidInput(exc.message, field="body", code=exc.code) from None
    session.execute(text("""
        INSERT INTO sms_templates (key, language, body, encoding, segments, updated_by, updated_at)
        VALUES (:key, :language, :body, :encoding, :segments, :user_id, :now)
        ON CONFLICT (key, language) DO UPDATE SET body = EXCLUDED.body,
            encoding = EXCLUDED.encoding, segments = EXCLUDED.segments,
            updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at"""),
        {"key": key.value, "language": language, "body": body, "encoding": worst.encoding.value,
         "segments": worst.segment_count, "user_id": user_id, "now": now})
    return {"key": key.value, "language": language, "body": body,
            "encoding": worst.encoding.value, "segments": worst.segment_count,
            "segment_budget": segment_budget}
