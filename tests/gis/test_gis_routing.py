"""gis.routing: splitting ways at junctions, costs, one-way partial edges, stitching."""

from __future__ import annotations

import pytest

from gis.errors import InvalidParameter
from gis.osm import DrivableWay
from gis.routing import (
    Access,
    EdgePosition,
    arrivals,
    best_leg,
    departures,
    same_edge_leg,
    split_ways,
    stitch,
    way_speed_kmh,
)


def way(osm_id, nodes, coords, oneway=0, highway="residential", maxspeed=None):
    return DrivableWay(osm_id=osm_id, highway=highway, name=None, oneway=oneway,
                       maxspeed_kmh=maxspeed, motor_access="yes", node_ids=tuple(nodes),
                       coords=tuple(coords))


def test_speeds_from_class_and_limit():
    assert way_speed_kmh("residential", None) == 25.0
    assert way_speed_kmh("primary", 50.0) == pytest.approx(40.0)
    assert way_speed_kmh("service", 50.0) == 15.0  # a yard stays a yard
    assert way_speed_kmh("footway", None) == 15.0
    with pytest.raises(InvalidParameter):
        way_speed_kmh("primary", 0)


def test_ways_split_at_shared_nodes_only():
    a = way(1, [1, 2, 3, 4], [(24.0, 60.0), (24.001, 60.0), (24.002, 60.0), (24.003, 60.0)])
    b = way(2, [3, 5], [(24.002, 60.0), (24.002, 60.001)], oneway=1)
    vertices, segments = split_ways([a, b])
    assert sorted(vertices) == [1, 3, 4, 5]  # node 2 is interior to one way: no vertex
    assert [(s.source_node, s.target_node) for s in segments] == [(1, 3), (3, 4), (3, 5)]
    first, _, oneway = segments
    assert len(first.coords) == 3 and first.length_m == pytest.approx(111.3, rel=0.01)
    assert first.cost_s == first.reverse_cost_s == pytest.approx(first.length_m / (25 / 3.6))
    assert oneway.cost_s > 0 and oneway.reverse_cost_s == -1.0
    _, reverse = split_ways([way(3, [7, 8], [(24.0, 60.0), (24.0, 60.001)], oneway=-1)])
    assert reverse[0].cost_s == -1.0 and reverse[0].reverse_cost_s > 0


def test_partial_edges_respect_one_way():
    one_way = EdgePosition(1, source=10, target=11, cost_s=100, reverse_cost_s=-1, length_m=500,
                           fraction=0.25)
    assert departures(one_way) == [Access(11, 75.0, 375.0)]
    assert arrivals(one_way) == [Access(10, 25.0, 125.0)]
    ahead = EdgePosition(1, 10, 11, 100, -1, 500, fraction=0.75)
    assert same_edge_leg(one_way, ahead) == (50.0, 250.0)
    assert same_edge_leg(ahead, one_way) is None  # would be driving against the one-way
    # against the flow: leave by the target, come back round to the source (60 s loop)
    leg = best_leg(ahead, one_way, {(11, 10): 60.0})
    assert leg.seconds == pytest.approx(25 + 60 + 25)
    assert (leg.depart.vertex, leg.arrive.vertex) == (11, 10)
    assert best_leg(ahead, one_way, {}) is None
    two_way = EdgePosition(2, 10, 11, 100, 100, 500, fraction=0.75)
    back = EdgePosition(2, 10, 11, 100, 100, 500, fraction=0.25)
    assert best_leg(two_way, back, {}).seconds == pytest.approx(50.0)
    with pytest.raises(InvalidParameter):
        EdgePosition(3, 1, 2, 1, 1, 1, fraction=1.5)


def test_stitch_drops_repeated_joints():
    assert stitch([[(0, 0), (1, 0)], [(1, 0), (2, 0)], [(2, 0)]]) == [(0.0, 0.0), (1.0, 0.0),
                                                                     (2.0, 0.0)]
