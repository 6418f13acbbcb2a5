"""What each outage type is called, in zh-CN and en: one table for every text that names it (the
agent's caller-ID hint, the voice line). Written and spoken forms differ only where a sentence
needs it: English speech puts an article before a countable noun ("There is a water outage")."""

from __future__ import annotations

TYPE_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {"water_outage": "停水", "low_pressure": "水压降低", "emergency_repair": "抢修停水",
              "planned_maintenance": "计划检修停水"},
    "en": {"water_outage": "water outage", "low_pressure": "low water pressure",
           "emergency_repair": "emergency repair", "planned_maintenance": "planned maintenance"},
}

# English speech: "There is {article}{word} in {area}" (uncountable types take none).
_EN_ARTICLES = {"water_outage": "a ", "emergency_repair": "an "}


def type_word(outage_type: str, language: str, *, spoken: bool = False) -> str:
    """The type's name in ``language`` (zh-CN or en); ``spoken`` for a sentence of the voice line."""
    word = TYPE_WORDS[language][outage_type]
    if spoken and language == "en":
        return _EN_ARTICLES.get(outage_type, "") + word
    return word
