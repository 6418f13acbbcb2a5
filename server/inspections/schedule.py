"""Periods and windows of inspection plans: pure date arithmetic in the plan's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Window:
    period_start: date  # the day a daily period is, the Monday of a week, the 1st of a month
    start: datetime  # UTC
    end: datetime  # UTC, after start


def period_start(frequency: str, local_day: date) -> date:
    if frequency == "daily":
        return local_day
    if frequency == "weekly":
        return local_day - timedelta(days=local_day.isoweekday() - 1)
    if frequency == "monthly":
        return local_day.replace(day=1)
    raise ValueError(f"unknown frequency {frequency!r}")


def window_for(frequency: str, start_of_period: date, window_start: time, window_end: time,
               zone: str, *, weekday: int | None = None, day_of_month: int | None = None) -> Window:
    """The window of the period beginning ``start_of_period``: on its day (daily), on ``weekday``
    of the week, on ``day_of_month`` of the month; an end at or before the start is the next day.
    Local times that do not exist or repeat (DST) resolve as zoneinfo does (fold=0)."""
    if frequency == "daily":
        day = start_of_period
    elif frequency == "weekly":
        day = start_of_period + timedelta(days=(weekday or 1) - 1)
    else:
        day = start_of_period.replace(day=day_of_month or 1)
    tz = ZoneInfo(zone)
    start = datetime.combine(day, window_start, tz)
    end_day = day if window_end > window_start else day + timedelta(days=1)
    end = datetime.combine(end_day, window_end, tz)
    return Window(start_of_period, start.astimezone(UTC), end.astimezone(UTC))


def next_period_start(frequency: str, start_of_period: date) -> date:
    """The first day of the period after the one beginning ``start_of_period``."""
    if frequency == "daily":
        return start_of_period + timedelta(days=1)
    if frequency == "weekly":
        return start_of_period + timedelta(days=7)
    if frequency == "monthly":
        y, m = divmod(start_of_period.year * 12 + start_of_period.month, 12)
        return date(y, m + 1, 1)
    raise ValueError(f"unknown frequency {frequency!r}")


def current_window(frequency: str, now: datetime, window_start: time, window_end: time,
                   zone: str, *, weekday: int | None = None,
                   day_of_month: int | None = None) -> Window:
    """The window of the period that ``now`` falls in (in the plan's zone)."""
    local_day = now.astimezone(ZoneInfo(zone)).date()
    return window_for(frequency, period_start(frequency, local_day), window_start, window_end,
                      zone, weekday=weekday, day_of_month=day_of_month)


def due_windows(frequency: str, now: datetime, ahead: timedelta, window_start: time,
                window_end: time, zone: str, *, weekday: int | None = None,
                day_of_month: int | None = None, limit: int = 32) -> list[Window]:
    """The current period's window, then every later period's whose window opens by
    ``now + ahead`` (the rounds generated ahead of time), in order."""
    w = current_window(frequency, now, window_start, window_end, zone, weekday=weekday,
                       day_of_month=day_of_month)
    out = [w]
    while len(out) < limit:
        w = window_for(frequency, next_period_start(frequency, w.period_start), window_start,
                       window_end, zone, weekday=weekday, day_of_month=day_of_month)
        if w.start > now + ahead:
            break
        out.append(w)
    return out
