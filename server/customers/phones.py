"""Phone numbers as callers and spreadsheets write them, normalised to E.164."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from server.core.errors import InvalidInput

_STRIP = re.compile(r"[\s\-().\u3000\uff08\uff09]")
# full-width digits and plus, as typed on Chinese input methods
_FULLWIDTH = str.maketrans("０１２３４５６７８９＋", "0123456789+")


def normalize(raw: str, region: str = "CN", *, field: str = "phone") -> str:
    """Return the E.164 form of ``raw`` or raise InvalidInput naming ``field``.

    Accepts E.164, national forms (``010-1234 5678``, ``138 0013 8000``), the international
    prefix ``00`` (``0086 …``), and a country code typed without ``+`` (``86138…``).
    """
    if raw is None or not str(raw).strip():
        raise InvalidInput("phone number is empty", field=field)
    text = str(raw).strip().translate(_FULLWIDTH)
    if len(text) > 32:
        raise InvalidInput("phone number is too long", field=field)
    compact = _STRIP.sub("", text)
    if not re.fullmatch(r"\+?\d{3,20}", compact):
        raise InvalidInput(f"{raw!r} is not a phone number", field=field)
    attempts = [compact]
    if not compact.startswith("+") and not compact.startswith("0"):
        attempts.append("+" + compact)  # 8613800138000 typed without the plus
    for candidate in attempts:
        try:
            number = phonenumbers.parse(candidate, region)
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    raise InvalidInput(f"{raw!r} is not a valid phone number (region {region})", field=field)


@lru_cache(maxsize=65536)
def kind(e164: str) -> str:
    """mobile, landline or other (cached: the SMS rules ask for every message)."""
    number = phonenumbers.parse(e164)
    t = phonenumbers.number_type(number)
    if t in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        return "mobile"
    if t == PhoneNumberType.FIXED_LINE:
        return "landline"
    return "other"
