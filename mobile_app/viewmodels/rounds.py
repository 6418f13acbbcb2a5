"""My rounds: what the rounds screen shows (no widgets).

Rounds are split in two: the ones whose window has opened (today's, under way or just ended,
in the order the technician walks them: open ones by closing time, then ended ones, latest
first) and, after them under an "Upcoming / 即将开始" heading, the rounds generated ahead whose
window has not opened yet, soonest first, each saying when it opens. Rounds the server withdrew
(``round_cancel``) are not in the list at all (the store leaves them out).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


def _window_text(start: datetime | None, end: datetime | None) -> str:
    return f"{start:%m-%d %H:%M} – {end:%m-%d %H:%M} UTC" if start and end else ""


def _row(r: dict[str, Any], visited: set[tuple[int, int]], upcoming: bool,
         lang: str) -> RoundRow:
    rid = r["round_id"]
    sites = sorted(r.get("sites") or [], key=lambda s: s.get("position", 0))
    done = sum(1 for s in sites if (rid, s["site_id"]) in visited)
    start, end = parse_time(r.get("window_start")), parse_time(r.get("window_end"))
    parts = []
    if upcoming and start is not None:
        parts.append(tr("rounds.opens", lang, time=f"{start:%m-%d %H:%M} UTC"))
    window = _window_text(start, end)
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
