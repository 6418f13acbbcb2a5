"""gis.ranking: candidates ranked by road ETA with a flagged straight-line fallback."""

from __future__ import annotations

import pytest

from gis import geo
from gis.errors import InvalidCoordinate, InvalidParameter
from gis.ranking import Candidate, EtaSource, rank_candidates

SITE = (24.9414, 60.1712)  # Helsinki Central Station


def test_road_eta_orders_candidates_regardless_of_straight_line() -> None:
    near_but_slow = Candidate("near", 24.9450, 60.1712, road_eta_s=900)
    far_but_fast = Candidate("far", 24.9800, 60.1900, road_eta_s=300)
    ranked = rank_candidates(*SITE, [near_but_slow, far_but_fast])
    assert [r.candidate.id for r in ranked] == ["far", "near"]
    assert [r.rank for r in ranked] == [1, 2]
    assert not any(r.used_fallback for r in ranked)
    assert ranked[1].straight_line_m == pytest.approx(geo.distance_m(*SITE, 24.9450, 60.1712))


def test_fallback_uses_straight_line_at_speed_with_detour_and_is_flagged() -> None:
    lon, lat = 24.9614, 60.1712
    straight = geo.distance_m(*SITE, lon, lat)
    (ranked,) = rank_candidates(
        *SITE, [Candidate(7, lon, lat)], fallback_speed_mps=10.0, detour_factor=1.5
    )
    assert ranked.used_fallback
    assert ranked.eta_source is EtaSource.STRAIGHT_LINE
    assert ranked.eta_s == pytest.approx(straight * 1.5 / 10.0)
    assert ranked.distance_m == pytest.approx(straight)


def test_road_distance_without_eta_uses_speed() -> None:
    (ranked,) = rank_candidates(
        *SITE, [Candidate("c", 24.95, 60.17, road_distance_m=1200)], fallback_speed_mps=12.0
    )
    assert ranked.eta_source is EtaSource.ROAD_DISTANCE
    assert ranked.used_fallback
    assert ranked.eta_s == pytest.approx(100.0)
    assert ranked.distance_m == 1200


def test_mixed_sources_ties_and_limit() -> None:
    candidates = [
        Candidate("b", 24.95, 60.18, road_eta_s=120),
        Candidate("a", 24.94, 60.17, road_eta_s=120),  # same ETA, closer: ranks first
        Candidate("unrouted-near", 24.9415, 60.1712),  # ~6 m away, tiny fallback ETA
        Candidate("d", 24.95, 60.18, road_eta_s=120),  # identical to b: input order decides
    ]
    ranked = rank_candidates(*SITE, candidates)
    assert [r.candidate.id for r in ranked] == ["unrouted-near", "a", "b", "d"]
    assert [r.candidate.id for r in rank_candidates(*SITE, candidates, limit=2)] == [
        "unrouted-near",
        "a",
    ]
    assert rank_candidates(*SITE, []) == []


def test_invalid_inputs() -> None:
    with pytest.raises(InvalidCoordinate):
        Candidate("x", 24.9, 91.0)
    with pytest.raises(InvalidParameter):
        Candidate("x", 24.9, 60.1, road_eta_s=-5)
    with pytest.raises(InvalidParameter):
        rank_candidates(*SITE, [], fallback_speed_mps=0)
    with pytest.raises(InvalidParameter):
        rank_candidates(*SITE, [], detour_factor=0.9)
    with pytest.raises(InvalidParameter):
        rank_candidates(*SITE, [], limit=-1)
    with pytest.raises(InvalidCoordinate):
        rank_candidates(200, 60, [])
