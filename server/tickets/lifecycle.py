"""The ticket state machine, as data: which moves exist and who may make them.

new → assigned → accepted → en_route → on_site → resolved → closed, plus cancelled, unassign
(back to new) and reopen (resolved/closed back to new). Consultation and query tickets may be
resolved straight from new by the agent who took the call (first-contact resolution).
"""

from __future__ import annotations

from enum import StrEnum

from server.models import Role


class Status(StrEnum):
    new = "new"
    assigned = "assigned"
    accepted = "accepted"
    en_route = "en_route"
    on_site = "on_site"
    resolved = "resolved"
    closed = "closed"
    cancelled = "cancelled"


class Category(StrEnum):
    repair = "repair"                  # 报修
    consultation = "consultation"      # 咨询
    complaint = "complaint"            # 投诉
    help_request = "help_request"      # 求助
    report = "report"                  # 举报
    query = "query"                    # 查询
    outage_report = "outage_report"    # 停水/停电报告


class Priority(StrEnum):
    emergency = "emergency"
    high = "high"
    normal = "normal"
    low = "low"


class Channel(StrEnum):
    phone = "phone"
    sms = "sms"
    web = "web"
    walk_in = "walk_in"


class CallbackOutcome(StrEnum):
    satisfied = "satisfied"
    dissatisfied = "dissatisfied"
    unreachable = "unreachable"


OPEN = frozenset({Status.new, Status.assigned, Status.accepted, Status.en_route, Status.on_site})
FIRST_CONTACT_CATEGORIES = frozenset({Category.consultation, Category.query})
# categories that send someone to a place, so they need one
FIELD_CATEGORIES = frozenset({Category.repair, Category.outage_report, Category.help_request})

_DESK = frozenset({Role.agent, Role.dispatcher, Role.manager})
_DISPATCH = frozenset({Role.dispatcher, Role.manager})
_FIELD = frozenset({Role.technician, Role.dispatcher, Role.manager})
_CALLBACK = frozenset({Role.agent, Role.manager})

# (from, to) -> roles allowed besides admin
TRANSITIONS: dict[tuple[Status, Status], frozenset[Role]] = {
    (Status.new, Status.assigned): _DISPATCH,
    (Status.new, Status.resolved): _DESK,          # first contact only, see check()
    (Status.new, Status.cancelled): _DESK,
    (Status.assigned, Status.accepted): _FIELD,
    (Status.assigned, Status.new): _DISPATCH,      # unassign
    (Status.assigned, Status.cancelled): _DESK,
    (Status.accepted, Status.en_route): _FIELD,
    (Status.accepted, Status.new): _DISPATCH,
    (Status.accepted, Status.cancelled): _DESK,
    (Status.en_route, Status.on_site): _FIELD,
    (Status.en_route, Status.new): _DISPATCH,
    (Status.en_route, Status.cancelled): _DISPATCH,
    (Status.on_site, Status.resolved): _FIELD,
    (Status.resolved, Status.closed): _CALLBACK,   # needs a callback outcome or a reason
    (Status.resolved, Status.new): _DESK,          # reopen
    (Status.closed, Status.new): _CALLBACK,        # reopen
}


def event_kind(src: Status, dst: Status) -> str:
    if dst is Status.new and src in (Status.resolved, Status.closed):
        return "reopened"
    if dst is Status.new:
        return "unassigned"
    return dst.value


class TransitionRefused(Exception):
    """Raised with a code and a message a person can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RoleRefused(Exception):
    pass


def check(src: Status, dst: Status, role: Role, category: Category) -> None:
    """Raise TransitionRefused if src → dst does not exist, RoleRefused if role may not make it."""
    if src == dst:
        raise TransitionRefused("invalid_transition", f"the ticket is already {src.value}")
    roles = TRANSITIONS.get((src, dst))
    if roles is None:
        allowed = sorted(d.value for (s, d) in TRANSITIONS if s == src)
        hint = f"from {src.value} it can go to: {', '.join(allowed)}" if allowed else \
            f"{src.value} is final"
        raise TransitionRefused("invalid_transition",
                                f"a ticket cannot go from {src.value} to {dst.value}; {hint}")
    if (src, dst) == (Status.new, Status.resolved) and category not in FIRST_CONTACT_CATEGORIES:
        raise TransitionRefused(
            "dispatch_required",
            f"a {category.value} ticket cannot be resolved at first contact; only consultation "
            "and query tickets can")
    if role is not Role.admin and role not in roles:
        raise RoleRefused(f"role {role.value!r} may not move a ticket from {src.value} to "
                          f"{dst.value}; allowed: {', '.join(sorted(r.value for r in roles | {Role.admin}))}")
