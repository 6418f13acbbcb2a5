"""The per-site hash chain of visit records: canonical JSON, SHA-256, and the checks that find
an edited, deleted or reordered record. Pure: rows come in as dicts.

hash = SHA-256 over the canonical JSON (keys sorted, no whitespace, UTF-8, times as UTC ISO 8601
with microseconds, coordinates rounded to 7 decimals) of the record's content fields, which
include ``site_seq`` and ``prev_hash`` — the previous record's hash, 64 zeros for the first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
HASHED_FIELDS = (
    "site_id", "site_seq", "round_id", "technician_id", "source", "client_id", "received_at",
    "started_at", "finished_at", "tag_scan_id", "scan_verdict", "lon", "lat", "accuracy_m",
    "distance_m", "template_id", "values", "attachments", "evidence", "flags", "note",
    "corrects_id", "prev_hash",
)


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        # JSONB keeps 5.0 as 5.0 but a client may send 5: hash the number, not its spelling
        return int(value)
    if value is not None and not isinstance(value, str | int | float | bool):
        return str(value)  # UUID
    return value


def canonical(record: dict[str, Any]) -> bytes:
    content = {k: _norm(record.get(k)) for k in HASHED_FIELDS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def find_problems(site_id: int, rows: Iterable[dict[str, Any]],
                  head: tuple[int, str] | None) -> list[dict[str, Any]]:
    """Problems of one site's chain. ``rows`` in ``site_seq`` order with their stored ``id``,
    ``hash`` and content; ``head`` = (site_seq, hash) stored as the chain's newest link."""
    rows = list(rows)
    problems: list[dict[str, Any]] = []
    by_hash = {r["hash"]: r for r in rows}

    def problem(row: dict[str, Any] | None, kind: str, detail: str) -> None:
        problems.append({"site_id": site_id, "site_seq": row["site_seq"] if row else None,
                         "record_id": row["id"] if row else None, "problem": kind,
                         "detail": detail})

    prev: dict[str, Any] | None = None
    for row in rows:
        if record_hash(row) != row["hash"]:
            problem(row, "edited", "the record's content does not match its hash")
        expected_prev = prev["hash"] if prev else GENESIS
        expected_seq = prev["site_seq"] + 1 if prev else 1
        if row["prev_hash"] != expected_prev:
            if row["prev_hash"] in by_hash and by_hash[row["prev_hash"]] is not row:
                other = by_hash[row["prev_hash"]]
                problem(row, "reordered", f"it follows record {other['id']} (seq "
                        f"{other['site_seq']}), not the record stored before it")
            elif row["site_seq"] != expected_seq:
                problem(row, "missing", f"seq {expected_seq}–{row['site_seq'] - 1} are gone "
                        "(the predecessor's hash is nowhere in the chain)")
            else:
                problem(row, "edited", "the previous record was rewritten (its hash is not the "
                        "one this record was chained to)")
        elif row["site_seq"] != expected_seq:
            problem(row, "reordered", f"seq {row['site_seq']} where {expected_seq} was expected")
        if prev is not None and row["id"] < prev["id"]:
            problem(row, "reordered", f"record {row['id']} was stored before record {prev['id']} "
                    "but comes after it in the chain")
        prev = row
    last = (rows[-1]["site_seq"], rows[-1]["hash"]) if rows else (0, GENESIS)
    if head is None and rows:
        problem(None, "head_mismatch", "records exist but the chain head is gone")
    elif head is not None and tuple(head) != last:
        kind = "missing" if head[0] > last[0] else "head_mismatch"
        problem(None, kind, f"the chain head says seq {head[0]}, the newest record is seq "
                f"{last[0]}" + (" (the newest records were deleted)" if kind == "missing" else ""))
    return problems
