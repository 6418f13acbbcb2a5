"""Classification of inbound SMS text: opt-out, opt-in, help, survey score, yes/no.

Twilio handles the English opt-out keywords on long codes itself, but Crewline keeps its own
consent record (other providers, Chinese keywords, audit), so every inbound text goes through
:func:`classify_reply`.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum


class ReplyIntent(StrEnum):
    """What an inbound text asks for."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    SATISFACTION_1 = "satisfaction_1"
    SATISFACTION_2 = "satisfaction_2"
    SATISFACTION_3 = "satisfaction_3"
    SATISFACTION_4 = "satisfaction_4"
    SATISFACTION_5 = "satisfaction_5"
    CONFIRM_YES = "confirm_yes"
    CONFIRM_NO = "confirm_no"
    OTHER = "other"

    @property
    def satisfaction_score(self) -> int | None:
        """The 1-5 survey score for ``SATISFACTION_*`` intents, else ``None``."""
        prefix = "satisfaction_"
        return int(self.value[len(prefix) :]) if self.value.startswith(prefix) else None


# Keys are in normalised form (see _normalise): NFKC, casefolded.
_KEYWORDS: dict[str, ReplyIntent] = {
    **dict.fromkeys(
        (
            "stop",
            "stopall",
            "unsubscribe",
            "cancel",
            "end",
            "quit",
            "optout",
            "revoke",
            "退订",
            "td",
        ),
        ReplyIntent.OPT_OUT,
    ),
    **dict.fromkeys(("start", "unstop"), ReplyIntent.OPT_IN),
    **dict.fromkeys(("help", "info", "帮助"), ReplyIntent.HELP),
    **dict.fromkeys(("y", "yes", "是"), ReplyIntent.CONFIRM_YES),
    **dict.fromkeys(("n", "no", "否"), ReplyIntent.CONFIRM_NO),
    **{str(score): ReplyIntent(f"satisfaction_{score}") for score in range(1, 6)},
}


def normalise_reply(text: str) -> str:
    """Return ``text`` as keywords are matched: NFKC (full-width forms become ASCII), casefolded,
    without surrounding whitespace or punctuation (``" Ｓｔｏｐ！"`` -> ``"stop"``)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    start, end = 0, len(folded)
    while start < end and _is_padding(folded[start]):
        start += 1
    while end > start and _is_padding(folded[end - 1]):
        end -= 1
    return folded[start:end]


def classify_reply(text: str) -> ReplyIntent:
    """Classify an inbound text as a single keyword; anything else is ``OTHER``.

    Matching is on the whole trimmed text, never on a word inside a sentence ("please don't stop
    the repair" is not an opt-out).

    >>> classify_reply("  stop ")
    <ReplyIntent.OPT_OUT: 'opt_out'>
    >>> classify_reply("５")
    <ReplyIntent.SATISFACTION_5: 'satisfaction_5'>
    """
    return _KEYWORDS.get(normalise_reply(text), ReplyIntent.OTHER)


def _is_padding(c: str) -> bool:
    return c.isspace() or unicodedata.category(c).startswith(("P", "Z", "C"))
