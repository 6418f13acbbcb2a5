"""Phone-number helpers shared by providers and callers: E.164 shape check and log masking."""

from __future__ import annotations

import re

_E164 = re.compile(r"\+[1-9]\d{6,14}")


def is_e164(number: str) -> bool:
    """True when ``number`` has the E.164 shape ``+`` and 7 to 15 digits, no leading zero.

    A shape check only: whether the number exists is the provider's (or ``phonenumbers``') call.
    """
    return _E164.fullmatch(number) is not None


def mask_phone_number(number: str) -> str:
    """Hide all but the country prefix and the last four characters, for logs.

    >>> mask_phone_number("+8613800138000")
    '+86*******8000'
    """
    if len(number) <= 6:
        return "*" * len(number)
    head = 3 if number.startswith("+") else 0
    return number[:head] + "*" * (len(number) - head - 4) + number[-4:]


_NUMBER_IN_TEXT = re.compile(r"\+?\d{7,15}")


def mask_phone_numbers_in(text: str) -> str:
    """Mask every phone-number-like run of digits inside free text (provider error messages).

    >>> mask_phone_numbers_in("The 'To' number +8613800138000 is not valid")
    "The 'To' number +86*******8000 is not valid"
    """
    return _NUMBER_IN_TEXT.sub(lambda match: mask_phone_number(match.group()), text)
