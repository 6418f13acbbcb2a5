"""The hash chain's pure parts: canonical JSON and the problem finder on hand-made chains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from server.inspections import chain


def _chain(n: int) -> list[dict]:
    rows, prev = [], chain.GENESIS
    for i in range(1, n + 1):
        row = {"id": 10 + i, "site_id": 1, "site_seq": i, "technician_id": 3,
               "started_at": datetime(2026, 1, 5, 8, i, tzinfo=UTC), "values": {"p": i * 0.5},
               "flags": [], "prev_hash": prev}
        row["hash"] = prev = chain.record_hash(row)
        rows.append(row)
    return rows


def test_canonical_json_ignores_spelling_but_not_content():
    a = {"site_id": 1, "values": {"b": 5, "a": "水"},
         "started_at": datetime(2026, 1, 5, 16, 0, tzinfo=timezone(timedelta(hours=8)))}
    b = {"values": {"a": "水", "b": 5.0}, "site_id": 1,
         "started_at": datetime(2026, 1, 5, 8, 0, tzinfo=UTC)}
    assert chain.canonical(a) == chain.canonical(b)
    assert '"started_at":"2026-01-05T08:00:00.000000Z"' in chain.canonical(a).decode()
    assert chain.record_hash(a) != chain.record_hash({**b, "values": {"a": "水", "b": 5.1}})


def test_an_intact_chain_has_no_problems():
    rows = _chain(3)
    assert chain.find_problems(1, rows, (3, rows[-1]["hash"])) == []
    assert chain.find_problems(1, [], None) == []


def test_each_kind_of_tampering_is_named():
    rows = _chain(4)
    head = (4, rows[-1]["hash"])
    edited = [dict(r) for r in rows]
    edited[1]["values"] = {"p": 99}
    assert [(p["problem"], p["site_seq"]) for p in chain.find_problems(1, edited, head)] == [
        ("edited", 2)]
    gap = rows[:1] + rows[2:]
    assert [(p["problem"], p["site_seq"]) for p in chain.find_problems(1, gap, head)] == [
        ("missing", 3)]
    tail = rows[:3]
    assert [p["problem"] for p in chain.find_problems(1, tail, head)] == ["missing"]
    swapped = [rows[0], {**rows[2], "site_seq": 2}, {**rows[1], "site_seq": 3}, rows[3]]
    kinds = {p["problem"] for p in chain.find_problems(1, swapped, head)}
    assert "reordered" in kinds
    assert [p["problem"] for p in chain.find_problems(1, rows, None)] == ["head_mismatch"]
