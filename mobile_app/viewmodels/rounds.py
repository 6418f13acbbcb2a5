"""My rounds: what the rounds screen shows (no widgets).

Rounds are split in two: the ones whose window has opened (today's, under way or just ended,
in the order the technician walks them: open ones by closing time, then ended ones, latest
first) and, after them under an "Upcoming / 即将开始" heading, the rounds generated ahead whose
window has not opened yet, soonest first, each saying when it opens. Rounds the server withdrew
(``round_cancel``) are not in the list at all (the store leaves them out).

Times are shown in the plan's time zone (the round message's optional ``timezone``, an IANA
name: the zone its window was defined in), else in the device's own zone. No zone is written
when the shown zone agrees with the device's clock (a Shanghai plan on a Shanghai handset:
"11-27 16:00 – 11-27 20:00"); otherwise its abbreviation follows ("… 20:00 CST").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mobile_app.i18n import tr
from mobile_app.viewmodels.jobs import parse_time


@dataclass(frozen=True)
class SiteRow:
    site_id: int
    text: str
    ident: str
    done: bool


@dataclass(frozen=True)
class RoundRow:
    round_id: int
    title: str
    caption: str
    upcoming: bool
    sites: list[SiteRow]


@dataclass(frozen=True)
class RoundsView:
    current: list[RoundRow]
    upcoming: list[RoundRow]
    upcoming_title: str
    empty: str  # "" unless there is no round at all


def round_zone(name: str | None) -> tzinfo | None:
    """The zone a round message names, or None: absent (an older server), or unknown to this
    device's time-zone database — then the device's own zone is used."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _shown(at: datetime, zone: tzinfo | None) -> tuple[str, str]:
    """``at`` as "MM-DD HH:MM" in ``zone`` (None: the device's zone), and the abbreviation to
    write after it: "" when it is the device's zone or agrees with it at that moment."""
    local = at.astimezone()
    if zone is None:
        return f"{local:%m-%d %H:%M}", ""
    there = at.astimezone(zone)
    same = there.utcoffset() == local.utcoffset()
    return f"{there:%m-%d %H:%M}", "" if same else (there.tzname() or "")


def _time_text(at: datetime, zone: tzinfo | None) -> str:
    text, abbr = _shown(at, zone)
    return f"{text} {abbr}" if abbr else text


def _window_text(start: datetime | None, end: datetime | None, zone: tzinfo | None) -> str:
    if not (start and end):
        return ""
    (a, a_abbr), (b, b_abbr) = _shown(start, zone), _shown(end, zone)
    if a_abbr == b_abbr:  # one zone name for both ends, unless a DST change falls inside
        return f"{a} – {b} {b_abbr}" if b_abbr else f"{a} – {b}"
    return f"{_time_text(start, zone)} – {_time_text(end, zone)}"


def _row(r: dict[str, Any], visited: set[tuple[int, int]], upcoming: bool,
         lang: str) -> RoundRow:
    rid = r["round_id"]
    sites = sorted(r.get("sites") or [], key=lambda s: s.get("position", 0))
    done = sum(1 for s in sites if (rid, s["site_id"]) in visited)
    start, end = parse_time(r.get("window_start")), parse_time(r.get("window_end"))
    zone = round_zone(r.get("timezone"))
    parts = []
    if upcoming and start is not None:
        parts.append(tr("rounds.opens", lang, time=_time_text(start, zone)))
    window = _window_text(start, end, zone)
    if window:
        parts.append(window)
    parts.append(tr("rounds.sites", lang, done=done, n=len(sites)))
    rows = []
    for s in sites:
        seen = (rid, s["site_id"]) in visited
        rows.append(SiteRow(s["site_id"], f"{'✓ ' if seen else ''}{s.get('position')}. "
                                          f"{s.get('name')}",
                            f"round.{rid}.site.{s['site_id']}", seen))
    return RoundRow(rid, str(r.get("plan_name") or rid), " · ".join(parts), upcoming, rows)


def rounds_view(rounds: list[dict[str, Any]], visited: set[tuple[int, int]], now: datetime,
                lang: str) -> RoundsView:
    current: list[tuple[tuple, RoundRow]] = []
    upcoming: list[tuple[tuple, RoundRow]] = []
    for r in rounds:
        start, end = parse_time(r.get("window_start")), parse_time(r.get("window_end"))
        if start is not None and start > now:
            upcoming.append(((start, r["round_id"]), _row(r, visited, True, lang)))
        else:
            is_open = end is None or end > now
            # open ones by closing time, soonest first; then ended ones, latest first
            key = (0, end.timestamp() if end else 0.0, r["round_id"]) if is_open \
                else (1, -end.timestamp(), r["round_id"])  # type: ignore[union-attr]
            current.append((key, _row(r, visited, False, lang)))
    current.sort(key=lambda x: x[0])
    upcoming.sort(key=lambda x: x[0])
    return RoundsView([row for _, row in current], [row for _, row in upcoming],
                      tr("rounds.upcoming", lang),
                      "" if current or upcoming else tr("rounds.empty", lang))
