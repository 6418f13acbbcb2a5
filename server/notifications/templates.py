"""SMS templates in zh-CN and en: built-in texts, placeholders, and the segment-budget check.

A template is a ``str.format`` text using only its own placeholders. Staff may override a text
(``sms_templates``); a text is accepted only if, rendered with the longest values its placeholders
can take, it fits the configured segment budget (segments decide the bill).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from enum import StrEnum

from sms_gateway import SegmentedMessage, segment_message

LANGUAGES = ("zh-CN", "en")
AREA_MAX_CHARS = 20  # outage areas are cut to this many characters before rendering
ADDRESS_MAX_CHARS = 30  # a job's address in the staff text, likewise


class TemplateKey(StrEnum):
    ticket_received = "ticket_received"
    crew_assigned = "crew_assigned"
    crew_arriving = "crew_arriving"
    ticket_resolved = "ticket_resolved"
    outage_notice = "outage_notice"
    etr_change = "etr_change"
    restoration = "restoration"
    help_reply = "help_reply"
    opted_in = "opted_in"
    staff_assigned = "staff_assigned"  # to the crew's technicians, not to customers
    planned_notice = "planned_notice"  # planned maintenance, sent ahead (server/outages)


# Outage messages go out during quiet hours too.
URGENT = frozenset({TemplateKey.outage_notice, TemplateKey.etr_change, TemplateKey.restoration})

PLACEHOLDERS: dict[TemplateKey, tuple[str, ...]] = {
    TemplateKey.ticket_received: ("number",),
    TemplateKey.crew_assigned: ("number", "eta_minutes", "eta_time"),
    TemplateKey.crew_arriving: ("number",),
    TemplateKey.ticket_resolved: ("number",),
    TemplateKey.outage_notice: ("area", "etr"),
    TemplateKey.etr_change: ("area", "etr"),
    TemplateKey.restoration: ("area",),
    TemplateKey.help_reply: (),
    TemplateKey.opted_in: (),
    TemplateKey.staff_assigned: ("number", "priority", "address"),
    TemplateKey.planned_notice: ("area", "start", "etr"),
}

# The longest value each placeholder can take, per language (what the budget check renders).
_WORST_CASE = {
    "zh-CN": {"number": "CL-0000000", "eta_minutes": "999", "eta_time": "23:59",
              "area": "区" * AREA_MAX_CHARS, "etr": "12-31 23:59", "priority": "emergency",
              "address": "路" * ADDRESS_MAX_CHARS, "start": "12-31 23:59"},
    "en": {"number": "CL-0000000", "eta_minutes": "999", "eta_time": "23:59",
           "area": "W" * AREA_MAX_CHARS, "etr": "12-31 23:59", "priority": "emergency",
           "address": "W" * ADDRESS_MAX_CHARS, "start": "12-31 23:59"},
}

DEFAULTS: dict[TemplateKey, dict[str, str]] = {
    TemplateKey.ticket_received: {
        "zh-CN": "【Crewline】您的报修已受理，工单号{number}。我们会尽快安排人员处理。回复TD退订",
        "en": "Crewline: we logged your report as ticket {number} and will send a crew soon. "
              "Reply STOP to opt out.",
    },
    TemplateKey.crew_assigned: {
        "zh-CN": "【Crewline】工单{number}已派工，"
                 "维修人员预计{eta_minutes}分钟后（约{eta_time}）到达。",
        "en": "Crewline: a crew is assigned to ticket {number} and should arrive in about "
              "{eta_minutes} min ({eta_time}).",
    },
    TemplateKey.crew_arriving: {
        "zh-CN": "【Crewline】工单{number}：维修人员已出发，即将到达，请保持电话畅通。",
        "en": "Crewline: the crew for ticket {number} is on the way and will arrive shortly.",
    },
    TemplateKey.ticket_resolved: {
        "zh-CN": "【Crewline】工单{number}已处理完毕。问题已解决请回复Y，未解决请回复N；"
                 "满意度请回复1-5（5为非常满意）。",
        "en": "Crewline: ticket {number} is resolved. Reply Y if the problem is fixed, N if not. "
              "Rate us 1-5 (5 = very satisfied).",
    },
    TemplateKey.outage_notice: {
        "zh-CN": "【Crewline】停供通知：{area}因故障暂停供应，预计{etr}恢复。"
                 "给您带来不便，敬请谅解。",
        "en": "Crewline: supply interrupted in {area}. Expected restoration {etr}. "
              "We apologise for the inconvenience.",
    },
    TemplateKey.etr_change: {
        "zh-CN": "【Crewline】{area}预计恢复时间调整为{etr}。",
        "en": "Crewline: new expected restoration time for {area}: {etr}.",
    },
    TemplateKey.restoration: {
        "zh-CN": "【Crewline】{area}已恢复供应，感谢您的耐心。",
        "en": "Crewline: supply restored in {area}. Thank you for your patience.",
    },
    TemplateKey.help_reply: {
        "zh-CN": "【Crewline】服务通知短信。如需帮助请致电客服热线。"
                 "回复TD退订，回复START恢复接收。",
        "en": "Crewline service notices. For help call our service line. Reply STOP to opt out, "
              "START to opt back in.",
    },
    TemplateKey.opted_in: {
        "zh-CN": "【Crewline】您已恢复接收服务通知短信。回复TD退订。",
        "en": "Crewline: you will receive service notices again. Reply STOP to opt out.",
    },
    TemplateKey.staff_assigned: {
        "zh-CN": "【Crewline】新工单{number}（{priority}）已派给您的班组：{address}。请在手持终端接单。",
        "en": "Crewline: new job {number} ({priority}) for your crew at {address}. "
              "Accept it on your handset.",
    },
    TemplateKey.planned_notice: {
        "zh-CN": "【Crewline】计划停水通知：因管网检修，{area}将于{start}至{etr}暂停供水，"
                 "请提前储水。",
        "en": "Crewline: planned maintenance. Water supply in {area} will be off from {start} "
              "until {etr}. Please store water in advance.",
    },
}


class TemplateRejected(ValueError):
    """A template text cannot be used; ``code`` says why (stable, for the API)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Rendered:
    body: str
    encoding: str
    segments: int


def check(key: TemplateKey, language: str, text: str, segment_budget: int) -> SegmentedMessage:
    """Validate ``text`` as the ``key`` template in ``language``; return its worst-case segmenting.

    :raises TemplateRejected: empty, malformed, unknown placeholder, or over the segment budget.
    """
    if not text.strip():
        raise TemplateRejected("template_empty", "the template text is empty")
    allowed = PLACEHOLDERS[key]
    try:
        fields = [name for _, name, spec, conv in string.Formatter().parse(text)
                  if name is not None]
    except ValueError as exc:
        raise TemplateRejected("template_malformed", f"the template text is malformed: {exc}") \
            from None
    for name in fields:
        if name not in allowed:
            hint = ", ".join("{" + p + "}" for p in allowed) or "none"
            raise TemplateRejected("template_unknown_placeholder",
                                   f"{{{name}}} is not a placeholder of {key.value}; "
                                   f"allowed: {hint}")
    worst = segment_message(text.format(**_WORST_CASE[language]))
    if worst.segment_count > segment_budget:
        raise TemplateRejected(
            "template_over_budget",
            f"with its longest values the text needs {worst.segment_count} {worst.encoding} "
            f"segments; the budget is {segment_budget}")
    return worst


def render(key: TemplateKey, language: str, values: dict[str, str],
           override: str | None = None) -> Rendered:
    """The message text for ``key`` in ``language`` (built-in text unless ``override``)."""
    language = language if language in LANGUAGES else "zh-CN"
    text = override or DEFAULTS[key][language]
    for name, limit in (("area", AREA_MAX_CHARS), ("address", ADDRESS_MAX_CHARS)):
        if name in values and len(values[name]) > limit:
            values = {**values, name: values[name][:limit - 3] + "..."}
    body = text.format(**{name: values.get(name, "") for name in PLACEHOLDERS[key]})
    segmented = segment_message(body)
    return Rendered(body, segmented.encoding.value, segmented.segment_count)
