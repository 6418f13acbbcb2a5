"""Crewline gis: pure geographic functions for dispatch.

Modules: :mod:`gis.geo` (SRID, validation, geodesic distance/bearing, local metric projections),
:mod:`gis.ranking` (candidate ranking by ETA), :mod:`gis.geofence`, :mod:`gis.tracks` (GPS tracks),
:mod:`gis.osm` (OpenStreetMap extracts) and :mod:`gis.errors` (the ``GisError`` family).
No web framework, ORM or global state; coordinates are always WGS84 lon/lat (SRID 4326).
"""
