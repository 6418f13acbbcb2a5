"""Structured logging with phone numbers masked wherever they appear."""

from __future__ import annotations

import logging
import re
from typing import Any

import structlog

from sms_gateway.numbers import mask_phone_number

# +8613800138000, 138-0013-8000, (010) 1234 5678 …: seven or more digits with separators.
_PHONE = re.compile(r"(?<![\w])(\+?\d[\d \-().]{5,}\d)(?![\w])")


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def mask_phone(text: str) -> str:
    """Mask anything in free text that looks like a phone number, separators and all, the way
    the SMS gateway masks numbers (one policy everywhere: country prefix and last four digits,
    ``+86*******8000``)."""

    def _mask(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(1))
        if len(digits) < 7 or _DATE.fullmatch(m.group(1).strip()):
            return m.group(1)
        return mask_phone_number(("+" if m.group(1).startswith("+") else "") + digits)

    return _PHONE.sub(_mask, text)


def _mask_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if isinstance(value, str) and key != "timestamp":
            event[key] = mask_phone(value)
    return event


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            # tracebacks become plain text (no local variables) *before* masking, so a number
            # inside an exception message or a frame is masked like any other value
            structlog.processors.format_exc_info,
            _mask_processor,
            structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)),
        cache_logger_on_first_use=True,
    )
