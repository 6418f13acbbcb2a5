"""SQL shared by the outage service, call absorption, the caller-ID hint and inference.

Containment rule (docs/outages.md): a place is inside an outage when the area **covers** it
(``ST_Covers``), so a service point exactly on the boundary — an outer ring, or the ring of a
hole — counts as affected (we would rather text one customer too many than miss one on the
line), while a point strictly inside a hole does not. Polygon edges are straight lines in
longitude/latitude (GeoJSON's rule), which is exactly what ``ST_Covers`` on SRID 4326 computes.
A buffer keeps its centre and radius and selects by geodesic distance (``ST_DWithin`` on
geography: distance <= radius, so the circle's edge counts too); its stored polygon is a
slightly larger 64-gon used for the index probe and for drawing.
"""

from __future__ import annotations

from server.models.outages import outage_ref_sql

# ``o`` has area, center, radius_m; ``{x}`` is a point geometry in SRID 4326.
COVERS = ("(CASE WHEN o.radius_m IS NULL THEN ST_Covers(o.area, {x}) "
          "ELSE o.area && {x} AND ST_DWithin(geography(o.center), geography({x}), o.radius_m) "
          "END)")

# The same, specialised per kind: lets the planner drive the service-point GiST index.
COVERS_POLYGON = "ST_Covers(o.area, {x})"
COVERS_BUFFER = "o.area && {x} AND ST_DWithin(geography(o.center), geography({x}), o.radius_m)"

ACTIVE = "o.status IN ('confirmed', 'restoring')"


def covers(x: str, kind: str | None = None) -> str:
    if kind is None:
        return COVERS.format(x=x)
    return (COVERS_BUFFER if kind == "buffer" else COVERS_POLYGON).format(x=x)


# What a ticket says is wrong, from its category and description (zh-CN and en keywords).
# Low pressure is checked first: "水压低，快没水了" is a pressure complaint.
SYMPTOM = """(CASE
  WHEN {t}.description ~* '(low pressure|pressure is low|weak flow|水压|降压|水小|水流小|水很小)'
    THEN 'low_pressure'
  WHEN {t}.category = 'outage_report'
    OR {t}.description ~* '(no water|water is off|water off|without water|停水|没水|没有水|无水|断水)'
    THEN 'no_water'
  WHEN {t}.description ~* '(burst|leak|main break|爆管|漏水|水管爆裂|管道破裂|冒水)'
    THEN 'leak'
END)"""

# Which symptoms each outage type explains (a ticket of another symptom is not absorbed).
TYPE_SYMPTOMS = {
    "water_outage": ("no_water", "low_pressure"),
    "low_pressure": ("low_pressure", "no_water"),
    "emergency_repair": ("no_water", "low_pressure", "leak"),
    "planned_maintenance": ("no_water", "low_pressure"),
}
MATCHES = "(o.type, {symptom}) IN (" + ", ".join(
    f"('{t}', '{s}')" for t, symptoms in TYPE_SYMPTOMS.items() for s in symptoms) + ")"


def symptom(t: str) -> str:
    return SYMPTOM.format(t=t)


# An outage's reference ("OUT-000042") computed in SQL: defined once, in server.models.outages.
ref = outage_ref_sql
