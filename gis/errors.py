"""The error family of the ``gis`` library.

Every error carries a stable ``code`` so an adapter (the server's error table, the CLI) can map it
to a response without this library knowing anything about HTTP.
"""

from __future__ import annotations


class GisError(Exception):
    """Base class of every error raised by :mod:`gis`."""

    code: str = "gis.error"


class InvalidCoordinate(GisError, ValueError):
    """A longitude or latitude is missing, not finite or out of range.

    ``field`` names the offending coordinate (``"lon"`` or ``"lat"``, or a caller-supplied prefix
    such as ``"points[3].lat"``) and ``value`` holds what was received.
    """

    code = "gis.invalid_coordinate"

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field}: {reason} (got {value!r})")
        self.field = field
        self.value = value
        self.reason = reason


class InvalidParameter(GisError, ValueError):
    """A non-coordinate argument (distance, speed, tolerance, ...) is unusable."""

    code = "gis.invalid_parameter"

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field}: {reason} (got {value!r})")
        self.field = field
        self.value = value
        self.reason = reason


class InvalidGeometry(GisError, ValueError):
    """A geometry is empty, of the wrong kind, or has coordinates outside lon/lat ranges."""

    code = "gis.invalid_geometry"


class OsmReadError(GisError):
    """An OpenStreetMap file could not be opened or parsed."""

    code = "gis.osm_read_error"
