"""Evidence of one visit: pure rules over the tag scan, the GPS fix, the times and the checklist.

A visit is **verified** only when its presence is proven: a scan of this site's tag by this
technician, near the visit in time, whose verdict is ``verified`` (SUN), and a GPS fix within
the site's tolerance. Everything else that is wrong is a *flag*; presence flags make the visit
``flagged``, the others (window, checklist) are listed without changing the evidence.

``uid_only`` (a plain tag: its UID can be copied to any phone or card) is not proof by default:
it is flagged ``tag_uid_only`` unless the deployment sets ``accept_uid_only``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# presence flags, in the order they are reported
PRESENCE_FLAGS = (
    "no_tag_scan", "scan_other_site", "scan_other_user", "scan_reused", "scan_time_gap",
    "tag_uid_only", "tag_unknown_tag", "tag_revoked", "tag_replayed", "tag_bad_mac",
    "tag_malformed", "no_gps", "gps_inaccurate", "gps_too_far",
)
OTHER_FLAGS = ("outside_window", "value_out_of_range", "checklist_incomplete")
ALL_FLAGS = PRESENCE_FLAGS + OTHER_FLAGS  # every code a visit's ``flags`` may hold
# Checklist numbers are hashed as the database returns them: a float's shortest spelling and its
# JSONB numeric agree below this magnitude (above it 1e16 comes back as 10000000000000000).
MAX_NUMBER = 1e15


@dataclass(frozen=True)
class ScanFacts:
    id: int
    verdict: str
    site_id: int | None
    actor_id: int
    at: datetime  # scanned_at, else received_at
    used_by_other_visit: bool


@dataclass(frozen=True)
class Rules:
    tolerance_m: float
    accept_uid_only: bool = False
    scan_max_gap: timedelta = timedelta(minutes=30)


@dataclass
class Finding:
    evidence: str
    flags: list[str]
    details: dict[str, Any] = field(default_factory=dict)


def judge_visit(*, site_id: int, technician_id: int, started_at: datetime, finished_at: datetime,
                scan: ScanFacts | None, distance_m: float | None, accuracy_m: float | None,
                rules: Rules, window: tuple[datetime, datetime] | None,
                items: list[dict[str, Any]], values: dict[str, Any],
                attachment_items: set[str]) -> Finding:
    flags: list[str] = []
    details: dict[str, Any] = {}
    if scan is None:
        flags.append("no_tag_scan")
    else:
        if scan.site_id != site_id:
            flags.append("scan_other_site")
            details["scan_site_id"] = scan.site_id
        if scan.actor_id != technician_id:
            flags.append("scan_other_user")
        if scan.used_by_other_visit:
            flags.append("scan_reused")
        gap = max(started_at - scan.at, scan.at - finished_at, timedelta(0))
        if gap > rules.scan_max_gap:
            flags.append("scan_time_gap")
            details["scan_gap_s"] = round(gap.total_seconds())
        if scan.verdict != "verified" and not (scan.verdict == "uid_only" and rules.accept_uid_only):
            flags.append(f"tag_{scan.verdict}")
    if distance_m is None:
        flags.append("no_gps")
    else:
        if accuracy_m is not None and accuracy_m > rules.tolerance_m:
            flags.append("gps_inaccurate")
        if distance_m > rules.tolerance_m:
            flags.append("gps_too_far")
    evidence = "flagged" if flags else "verified"
    if window is not None and not (window[0] <= started_at <= window[1]):
        flags.append("outside_window")
    out_of_range, missing = checklist_findings(items, values, attachment_items)
    if out_of_range:
        flags.append("value_out_of_range")
        details["out_of_range"] = out_of_range
    if missing:
        flags.append("checklist_incomplete")
        details["missing"] = missing
    return Finding(evidence, flags, details)


def checklist_findings(items: list[dict[str, Any]], values: dict[str, Any],
                       attachment_items: set[str]) -> tuple[list[str], list[str]]:
    """(keys of numbers outside their range, keys of required items without an answer)."""
    out_of_range, missing = [], []
    for item in items:
        key, kind = item["key"], item["kind"]
        if kind in ("photo", "signature"):
            if item.get("required", True) and key not in attachment_items:
                missing.append(key)
            continue
        value = values.get(key)
        if value is None or (kind == "text" and not str(value).strip()):
            if item.get("required", True):
                missing.append(key)
            continue
        if kind == "number":
            low, high = item.get("min"), item.get("max")
            if (low is not None and value < low) or (high is not None and value > high):
                out_of_range.append(key)
    return out_of_range, missing


def check_value_types(items: list[dict[str, Any]], values: dict[str, Any]) -> tuple[str, str] | None:
    """The first value that has the wrong shape for its item, as (key, reason); None if fine.
    Unknown keys and answers to photo/signature items (those are attachments) are wrong too."""
    by_key = {i["key"]: i for i in items}
    for key, value in values.items():
        item = by_key.get(key)
        if item is None:
            return key, "is not an item of this checklist version"
        if value is None:
            continue
        kind = item["kind"]
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return key, "must be a number"
            if abs(value) >= MAX_NUMBER:  # beyond this JSONB and float spellings diverge
                return key, f"must be below {MAX_NUMBER:.0e} in magnitude"
        elif kind == "yes_no":
            if not isinstance(value, bool):
                return key, "must be true or false"
        elif kind == "choice":
            if value not in item["options"]:
                return key, f"must be one of {', '.join(item['options'])}"
        elif kind == "text":
            if not isinstance(value, str) or len(value) > 2000 or "\x00" in value:
                return key, "must be text of at most 2000 characters (no NUL)"
        else:
            return key, f"is a {kind}: send it as an attachment"
    return None
