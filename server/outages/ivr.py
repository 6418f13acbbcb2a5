"""The voice line (Twilio Voice): callers inside an active outage hear it announced with its ETR in
their language and may press 1 for SMS updates, before the call goes to an agent. TwiML is built
with the twilio SDK's ``VoiceResponse``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse

from server.customers import phones
from server.notifications import service as notifications
from server.notifications.service import OutageRecipients
from server.outages import sql
from server.outages.service import OutagePolicy, get
from server.outages.words import type_word
from server.settings import Settings

TEXTS = {
    "zh-CN": {
        "announce": "您好，这里是Crewline供水服务热线。您所在的{area}目前{type}，预计{etr}恢复。"
                    "我们正在全力抢修，给您带来不便，敬请谅解。",
        "no_etr": "您好，这里是Crewline供水服务热线。您所在的{area}目前{type}，恢复时间待定。",
        "offer": "如需通过短信接收最新进展，请按1。",
        "subscribed": "已为您开通本次停水的短信通知。",
        "not_mobile": "抱歉，此号码无法接收短信。",
        "connecting": "正在为您转接人工客服，请稍候。",
    },
    "en": {
        "announce": "Hello, this is the Crewline water service line. There is {type} in {area}. "
                    "We expect supply to return {etr}. We are sorry for the inconvenience.",
        "no_etr": "Hello, this is the Crewline water service line. There is {type} in {area}. "
                  "The restoration time is not known yet.",
        "offer": "To get updates by text message, press 1.",
        "subscribed": "You will get text message updates about this outage.",
        "not_mobile": "Sorry, this number cannot receive text messages.",
        "connecting": "Connecting you to an agent. Please hold.",
    },
}


@dataclass(frozen=True)
class CallerOutage:
    outage_id: int
    ref: str
    type: str
    area_name: str
    etr: datetime | None
    language: str
    customer_id: int


# The caller's customers and the active, started outage covering one of their service points.
_CALLER = text(f"""
SELECT o.id AS outage_id, {sql.ref('o.id')} AS ref, o.type, o.area_name, o.etr,
       c.preferred_language AS language, c.id AS customer_id
FROM customer_phones p
JOIN customers c ON c.id = p.customer_id
JOIN service_points s ON s.customer_id = c.id
JOIN outages o ON {sql.ACTIVE} AND o.starts_at <= :now AND {sql.covers('s.geom')}
WHERE p.e164 = :e164
ORDER BY o.starts_at DESC, o.id DESC, c.id
LIMIT 1
""")


def caller_outage(session: Session, e164: str, now: datetime) -> CallerOutage | None:
    row = session.execute(_CALLER, {"e164": e164, "now": now}).mappings().one_or_none()
    return CallerOutage(**row) if row else None


def caller_language(session: Session, e164: str) -> str:
    language = session.execute(text(
        "SELECT c.preferred_language FROM customer_phones p JOIN customers c "
        "ON c.id = p.customer_id WHERE p.e164 = :e164 ORDER BY c.id LIMIT 1"),
        {"e164": e164}).scalar_one_or_none()
    return language or "zh-CN"


def spoken_time(when: datetime, language: str, timezone: str) -> str:
    local = when.astimezone(ZoneInfo(timezone))
    if language == "zh-CN":
        return f"{local.month}月{local.day}日{local.hour}点{local.minute:02d}分"
    return f"on {local.strftime('%B')} {local.day} at {local.strftime('%H:%M')}"


def _say(r, settings: Settings, language: str, words: str) -> None:
    zh = language == "zh-CN"
    r.say(words, voice=settings.ivr_voice_zh if zh else settings.ivr_voice_en,
          language=settings.ivr_language_zh if zh else settings.ivr_language_en)


def _to_agent(r: VoiceResponse, settings: Settings, language: str) -> None:
    _say(r, settings, language, TEXTS[language]["connecting"])
    if settings.ivr_agent_number:
        r.dial(settings.ivr_agent_number)
    else:
        r.enqueue(settings.ivr_agent_queue)


def straight_to_agent(settings: Settings, language: str = "zh-CN") -> str:
    """TwiML that only puts the caller through (the fallback when anything else fails)."""
    r = VoiceResponse()
    _to_agent(r, settings, language if language in TEXTS else "zh-CN")
    return str(r)


def gather_url(settings: Settings, outage_id: int, language: str) -> str:
    return (settings.public_base_url.rstrip("/") + "/api/v1/outages/ivr/gather?"
            + urlencode({"outage_id": outage_id, "lang": language}))


def answer(session: Session, e164: str, now: datetime, settings: Settings,
           policy: OutagePolicy) -> str:
    """TwiML for an inbound call from ``e164``."""
    r = VoiceResponse()
    found = caller_outage(session, e164, now)
    if found is None:
        _to_agent(r, settings, caller_language(session, e164))
        return str(r)
    language = found.language if found.language in TEXTS else "zh-CN"
    words = TEXTS[language]
    values = {"area": found.area_name, "type": type_word(found.type, language, spoken=True)}
    if found.etr is not None:
        _say(r, settings, language, words["announce"].format(
            **values, etr=spoken_time(found.etr, language, policy.timezone)))
    else:
        _say(r, settings, language, words["no_etr"].format(**values))
    gather = r.gather(num_digits=1, timeout=5, method="POST",
                      action=gather_url(settings, found.outage_id, language))
    _say(gather, settings, language, words["offer"])
    _to_agent(r, settings, language)  # no key pressed: straight on to an agent
    return str(r)


def subscribe(session: Session, outage_id: int, e164: str, language: str, now: datetime,
              policy: OutagePolicy) -> bool:
    """The caller pressed 1: their number gets this outage's updates (and the current notice
    now, once). False if the number cannot take SMS."""
    try:
        mobile = phones.kind(e164) == "mobile"
    except Exception:
        mobile = False
    if not mobile:
        return False
    outage = get(session, outage_id)
    session.execute(text("""
        INSERT INTO outage_subscriptions (outage_id, e164, customer_id, language, source,
            created_at)
        VALUES (:outage_id, CAST(:e164 AS varchar),
                (SELECT customer_id FROM customer_phones WHERE e164 = CAST(:e164 AS varchar)
                 ORDER BY customer_id LIMIT 1), :language, 'ivr', :now)
        ON CONFLICT (outage_id, e164) DO NOTHING"""),
        {"outage_id": outage.id, "e164": e164, "language": language, "now": now})
    if outage.notice_sent_at is not None and outage.status in ("confirmed", "restoring"):
        only_them = OutageRecipients(
            customers="SELECT NULL::bigint WHERE false",
            numbers="SELECT e164, language, customer_id FROM outage_subscriptions "
                    "WHERE outage_id = :outage_id AND e164 = CAST(:e164 AS varchar)",
            params={"outage_id": outage.id, "e164": e164})
        if outage.etr_revision == 0:
            notifications.on_outage_notice(session, outage.ref, only_them, area=outage.area_name,
                                           etr=policy.local(outage.etr), now=now,
                                           revision="notice")
        else:  # the latest word is the latest ETR change
            notifications.on_etr_change(session, outage.ref, only_them, area=outage.area_name,
                                        etr=policy.local(outage.etr), now=now,
                                        revision=f"etr-{outage.etr_revision}")
    return True


def after_gather(session: Session, outage_id: int, language: str, digits: str, e164: str,
                 now: datetime, settings: Settings, policy: OutagePolicy) -> str:
    """TwiML after the caller pressed a key in the outage announcement."""
    language = language if language in TEXTS else "zh-CN"
    r = VoiceResponse()
    if digits.strip() == "1":
        ok = subscribe(session, outage_id, e164, language, now, policy)
        _say(r, settings, language, TEXTS[language]["subscribed" if ok else "not_mobile"])
    _to_agent(r, settings, language)
    return str(r)
