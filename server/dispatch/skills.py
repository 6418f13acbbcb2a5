"""Which crew skill a ticket needs, decided from its category and description.

Tickets carry no skill field: the agent describes the problem in words. The mapping is a keyword
table in the three languages of the demo (Chinese, English, Finnish); the first rule that matches
wins, in the order below, so "meter valve" means a meter job. A field ticket that matches nothing
needs no particular skill (any crew may go), and the dispatcher can always ask for one explicitly
(`?skill=` on suggestions). See docs/dispatch.md.
"""

from __future__ import annotations

import re

from server.crews.schemas import Skill

RULES: list[tuple[Skill, tuple[str, ...]]] = [
    (Skill.meter, ("水表", "电表", "meter", "mittari")),
    (Skill.valve, ("阀门", "阀", "valve", "venttiili", "hydrant", "消防栓")),
    (Skill.water_main, ("主管道", "爆管", "爆裂", "管道", "水管", "漏水", "water main",
                        "main burst",
                        "pipe", "burst", "leak", "flood", "vesijohto", "putki", "vuoto")),
    (Skill.electrical, ("停电", "电线", "电缆", "变压器", "electric", "power", "transformer",
                        "sähkö", "muuntaja")),
    (Skill.telecom_line, ("光纤", "通信", "电话线", "网络", "telecom", "fibre", "fiber",
                          "phone line", "broadband", "kuitu", "puhelinlinja")),
]
_PATTERNS = [(skill, re.compile("|".join(re.escape(k) for k in keys), re.IGNORECASE))
             for skill, keys in RULES]


def needed_skill(category: str, description: str) -> Skill | None:
    """The skill a ticket needs, or None when any crew will do."""
    for skill, pattern in _PATTERNS:
        if pattern.search(description or ""):
            return skill
    if category == "outage_report":
        return Skill.water_main  # the demo utility's outages are water supply outages
    return None
