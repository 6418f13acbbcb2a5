"""Read OpenStreetMap extracts (.pbf, .osm XML) into addressed buildings and drivable ways.

Both readers are iterators over plain dataclasses in lon/lat (:data:`gis.geo.SRID`) and take an
optional ``progress`` callback, called every ``progress_every`` OSM objects and once at the end,
so a CLI can show a progress bar. Data read from OSM is © OpenStreetMap contributors, ODbL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import osmium
import osmium.filter
import osmium.geom
import shapely
from shapely.geometry.base import BaseGeometry

from gis._checks import real_number
from gis.errors import OsmReadError

OsmType = Literal["node", "way", "relation"]
Oneway = Literal[-1, 0, 1]

DRIVABLE_HIGHWAYS: frozenset[str] = frozenset(
    {
        "motorway",
        "trunk",
        "primary",
        "secondary",
        "tertiary",
        "unclassified",
        "residential",
        "motorway_link",
        "trunk_link",
        "primary_link",
        "secondary_link",
        "tertiary_link",
        "living_street",
        "service",
    }
)
"""Highway classes a service van may use unless access tags forbid it."""

MOTOR_ACCESS_ONLY_HIGHWAYS: frozenset[str] = frozenset(
    {
        "footway",
        "cycleway",
        "path",
        "steps",
        "pedestrian",
        "track",
        "bridleway",
    }
)
"""Highway classes drivable only with explicit ``motorcar`` or ``motor_vehicle`` access."""

_NO_MOTOR_ACCESS = frozenset({"no", "agricultural", "forestry", "use_sidepath"})
_IMPLIED_ONEWAY_HIGHWAYS = frozenset({"motorway", "motorway_link"})
_ONEWAY_JUNCTIONS = frozenset({"roundabout", "circular"})
# Finland's implicit limits (the demo data is Helsinki); other countries' codes parse as unknown.
_IMPLICIT_MAXSPEED_KMH: Mapping[str, float] = {
    "fi:urban": 50.0,
    "fi:rural": 80.0,
    "fi:motorway": 120.0,
    "fi:living_street": 20.0,
}
_SPEED_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$", re.IGNORECASE)
_UNIT_TO_KMH = {None: 1.0, "km/h": 1.0, "kmh": 1.0, "kph": 1.0, "mph": 1.609344, "knots": 1.852}


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """Progress of a scan: OSM objects read so far, items yielded so far, and whether it ended.

    ``objects_read`` counts the objects that passed osmium's tag pre-filter (objects with a
    ``highway`` or ``addr:housenumber`` key, plus assembled areas), not every object in the file;
    the total is unknown in advance, so a progress display should show counts, not a percentage.
    """

    objects_read: int
    items_yielded: int
    finished: bool


ProgressCallback = Callable[[ScanProgress], None]


@dataclass(frozen=True, slots=True)
class AddressedBuilding:
    """A building (or, on request, a standalone address node) with a street address.

    ``lon``/``lat`` is a representative point: the polygon centroid, or a point on the surface
    when the centroid falls outside (L-shaped or courtyard buildings); a node's own location.
    ``address`` is the one-line form produced by :func:`format_address`.
    """

    osm_type: OsmType
    osm_id: int
    street: str
    housenumber: str
    postcode: str | None
    city: str | None
    address: str
    lon: float
    lat: float
    building: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class DrivableWay:
    """A way usable by a service van, as an ordered polyline of OSM nodes.

    ``oneway``: 1 = only in node order, -1 = only against node order, 0 = both directions.
    ``maxspeed_kmh`` is None when missing or not parseable. ``motor_access`` is the resolved
    access value for motor cars (``"yes"``, ``"destination"``, ``"private"``, ...). A way cut by the
    extract boundary yields one piece per run of nodes present in the file, all with its ``osm_id``.
    """

    osm_id: int
    highway: str
    name: str | None
    oneway: Oneway
    maxspeed_kmh: float | None
    motor_access: str
    node_ids: tuple[int, ...]
    coords: tuple[tuple[float, float], ...]


def format_address(
    street: str, housenumber: str, postcode: str | None = None, city: str | None = None
) -> str:
    """One-line address in Nordic order: ``"Kaivokatu 1, 00100 Helsinki"``."""
    first = " ".join(part for part in (street.strip(), housenumber.strip()) if part)
    second = " ".join(part.strip() for part in (postcode, city) if part and part.strip())
    return f"{first}, {second}" if second else first


def parse_maxspeed(value: str | None) -> float | None:
    """Parse an OSM ``maxspeed`` value to km/h, or None when absent or not a fixed number.

    Understands plain numbers (km/h), ``mph``/``knots``/``km/h`` units, Finnish implicit values
    (``FI:urban``...) and ``;``-separated lists (the lowest wins, to stay conservative).
    """
    if value is None:
        return None
    speeds: list[float] = []
    for part in value.split(";"):
        part = part.strip()
        implicit = _IMPLICIT_MAXSPEED_KMH.get(part.lower())
        if implicit is not None:
            speeds.append(implicit)
            continue
        match = _SPEED_RE.match(part)
        if match is None:
            return None
        unit = match.group(2).lower() if match.group(2) else None
        speeds.append(float(match.group(1)) * _UNIT_TO_KMH[unit])
    positive = [s for s in speeds if s > 0]
    return min(positive) if positive else None


def oneway_direction(highway: str, oneway: str | None, junction: str | None = None) -> Oneway:
    """Travel direction allowed on a way: 1 forward, -1 reverse, 0 both.

    ``oneway=yes|true|1`` is forward and ``-1|reverse`` reverse; ``no|false|0`` is both even on a
    roundabout. Without a usable ``oneway`` tag, roundabouts and motorways (and their links) are
    implied one-way forward. Other values (``reversible``, ``alternating``) count as both ways.
    """
    value = (oneway or "").strip().lower()
    if value in {"yes", "true", "1"}:
        return 1
    if value in {"-1", "reverse"}:
        return -1
    if value in {"no", "false", "0"}:
        return 0
    if (junction or "").lower() in _ONEWAY_JUNCTIONS or highway in _IMPLIED_ONEWAY_HIGHWAYS:
        return 1
    return 0


def motor_access(tags: Mapping[str, str]) -> str | None:
    """Resolve whether a service van may use a highway; None when it may not.

    For road classes the most specific of ``motorcar``, ``motor_vehicle``, ``vehicle``, ``access``
    wins and defaults to ``"yes"``. Footways, cycleways, paths, steps, pedestrian streets and
    tracks need an explicit ``motorcar`` or ``motor_vehicle`` permission.
    """
    highway = tags.get("highway")
    if highway in DRIVABLE_HIGHWAYS:
        keys: tuple[str, ...] = ("motorcar", "motor_vehicle", "vehicle", "access")
        default: str | None = "yes"
    elif highway in MOTOR_ACCESS_ONLY_HIGHWAYS:
        keys, default = ("motorcar", "motor_vehicle"), None
    else:
        return None
    for key in keys:
        value = tags.get(key)
        if value:
            value = value.split(";")[0].strip().lower()
            return None if value in _NO_MOTOR_ACCESS else value
    return default


def iter_addressed_buildings(
    path: str | os.PathLike[str],
    *,
    include_address_nodes: bool = False,
    progress: ProgressCallback | None = None,
    progress_every: int = 10_000,
) -> Iterator[AddressedBuilding]:
    """Yield every building with ``addr:street`` and ``addr:housenumber`` in an OSM file.

    Building ways and multipolygon relations are assembled into areas by osmium; buildings whose
    outline is incomplete in the extract are skipped. With ``include_address_nodes``, address
    nodes (entrances, shops, standalone address points) are yielded too, with ``osm_type="node"``;
    they often repeat a building's address, see :func:`unique_by_address`.
    """
    every = _check_every(progress_every)
    processor = _processor(path).with_areas(osmium.filter.KeyFilter("building"))
    processor = processor.with_filter(osmium.filter.KeyFilter("addr:housenumber"))
    wkb = osmium.geom.WKBFactory()
    read = yielded = 0
    for obj in _guarded(processor, path):
        read += 1
        if progress is not None and read % every == 0:
            progress(ScanProgress(read, yielded, finished=False))
        if isinstance(obj, osmium.osm.Area):
            if obj.tags.get("building", "no") == "no":
                continue
            try:
                outline = shapely.from_wkb(wkb.create_multipolygon(obj))
            except RuntimeError:
                continue  # broken ring in the source data; osmium reports it, we skip it
            lon, lat = _representative_point(outline)
            osm_type: OsmType = "way" if obj.from_way() else "relation"
            osm_id = obj.orig_id()
        elif include_address_nodes and isinstance(obj, osmium.osm.Node):
            if not obj.location.valid():
                continue
            lon, lat, osm_type, osm_id = obj.location.lon, obj.location.lat, "node", obj.id
        else:
            continue
        building = _building_from(obj.tags, lon, lat, osm_type, osm_id)
        if building is not None:
            yielded += 1
            yield building
    if progress is not None:
        progress(ScanProgress(read, yielded, finished=True))


def iter_drivable_ways(
    path: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
    progress_every: int = 10_000,
) -> Iterator[DrivableWay]:
    """Yield every way a service van may drive on (see :func:`motor_access`) in an OSM file."""
    every = _check_every(progress_every)
    processor = _processor(path, osmium.osm.NODE | osmium.osm.WAY).with_locations()
    processor = processor.with_filter(osmium.filter.KeyFilter("highway"))
    read = yielded = 0
    for obj in _guarded(processor, path):
        read += 1
        if progress is not None and read % every == 0:
            progress(ScanProgress(read, yielded, finished=False))
        if not isinstance(obj, osmium.osm.Way):
            continue
        tags = dict(obj.tags)
        access = motor_access(tags)
        if access is None:
            continue
        highway = tags["highway"]
        name = tags.get("name") or None
        oneway = oneway_direction(highway, tags.get("oneway"), tags.get("junction"))
        maxspeed_kmh = parse_maxspeed(tags.get("maxspeed"))
        for node_ids, coords in _located_runs(obj):
            yielded += 1
            yield DrivableWay(
                osm_id=obj.id,
                highway=highway,
                name=name,
                oneway=oneway,
                maxspeed_kmh=maxspeed_kmh,
                motor_access=access,
                node_ids=node_ids,
                coords=coords,
            )
    if progress is not None:
        progress(ScanProgress(read, yielded, finished=True))


def unique_by_address(places: Iterable[AddressedBuilding]) -> list[AddressedBuilding]:
    """Keep one entry per street address, preferring buildings over address nodes.

    Addresses compare by street and house number, ignoring case and spacing, which is unique
    within one city-sized extract. The result keeps the order in which addresses first appear.
    """
    chosen: dict[tuple[str, str], AddressedBuilding] = {}
    for place in places:
        key = (_normalise(place.street), _normalise(place.housenumber))
        current = chosen.get(key)
        if current is None or (current.osm_type == "node" and place.osm_type != "node"):
            chosen[key] = place
    return list(chosen.values())


def _building_from(
    tags: osmium.osm.TagList, lon: float, lat: float, osm_type: OsmType, osm_id: int
) -> AddressedBuilding | None:
    street = (tags.get("addr:street") or "").strip()
    housenumber = (tags.get("addr:housenumber") or "").strip()
    if not street or not housenumber:
        return None
    postcode = (tags.get("addr:postcode") or "").strip() or None
    city = (tags.get("addr:city") or "").strip() or None
    return AddressedBuilding(
        osm_type=osm_type,
        osm_id=osm_id,
        street=street,
        housenumber=housenumber,
        postcode=postcode,
        city=city,
        address=format_address(street, housenumber, postcode, city),
        lon=lon,
        lat=lat,
        building=tags.get("building"),
        name=tags.get("name") or None,
    )


def _representative_point(outline: BaseGeometry) -> tuple[float, float]:
    # A centroid is the natural "where is this building" point, but it can fall in a courtyard
    # or outside an L-shape; a service point must lie on the building.
    point = outline.centroid
    if not outline.covers(point):
        point = outline.point_on_surface()
    return float(point.x), float(point.y)


def _located_runs(
    way: osmium.osm.Way,
) -> Iterator[tuple[tuple[int, ...], tuple[tuple[float, float], ...]]]:
    ids: list[int] = []
    coords: list[tuple[float, float]] = []
    for node in way.nodes:
        if node.location.valid():
            ids.append(node.ref)
            coords.append((node.location.lon, node.location.lat))
            continue
        if len(ids) >= 2:
            yield tuple(ids), tuple(coords)
        ids, coords = [], []
    if len(ids) >= 2:
        yield tuple(ids), tuple(coords)


def _processor(
    path: str | os.PathLike[str], entities: osmium.osm.osm_entity_bits = osmium.osm.ALL
) -> osmium.FileProcessor:
    if not os.path.isfile(path):
        raise OsmReadError(f"OSM file not found: {os.fspath(path)}")
    try:
        return osmium.FileProcessor(os.fspath(path), entities)
    except (RuntimeError, ValueError) as exc:
        raise OsmReadError(f"cannot open OSM file {os.fspath(path)}: {exc}") from exc


def _guarded(processor: osmium.FileProcessor, path: str | os.PathLike[str]) -> Iterator[object]:
    try:
        yield from processor
    except (RuntimeError, ValueError) as exc:
        raise OsmReadError(f"cannot read OSM file {os.fspath(path)}: {exc}") from exc


def _check_every(progress_every: int) -> int:
    return int(real_number("progress_every", progress_every, minimum=1))


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()
