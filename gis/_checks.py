"""Argument checks shared by the gis modules (private)."""

from __future__ import annotations

import math
from numbers import Real

from gis.errors import InvalidParameter


def real_number(
    field: str, value: object, *, minimum: float = 0.0, inclusive: bool = True
) -> float:
    """Return ``value`` as a finite float not below ``minimum`` or raise InvalidParameter."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidParameter(field, value, "not a number")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParameter(field, value, "not finite")
    if number < minimum or (not inclusive and number == minimum):
        relation = ">=" if inclusive else ">"
        raise InvalidParameter(field, value, f"must be {relation} {minimum:g}")
    return number
