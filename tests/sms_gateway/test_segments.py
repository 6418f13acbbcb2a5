from __future__ import annotations

import pytest

from sms_gateway.segments import (
    GSM7_BASIC_CHARACTERS,
    GSM7_EXTENSION_CHARACTERS,
    SmsEncoding,
    detect_encoding,
    segment_message,
)

GSM = SmsEncoding.GSM_7
UCS2 = SmsEncoding.UCS_2


def test_tables_have_gsm_03_38_sizes() -> None:
    assert len(GSM7_BASIC_CHARACTERS) == 127  # 128 positions minus the escape
    assert len(GSM7_EXTENSION_CHARACTERS) == 10
    assert not GSM7_BASIC_CHARACTERS & GSM7_EXTENSION_CHARACTERS


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", GSM, 0, 0),
        ("Hello", GSM, 5, 1),
        ("a" * 160, GSM, 160, 1),
        ("a" * 161, GSM, 161, 2),
        ("a" * 306, GSM, 306, 2),
        ("a" * 307, GSM, 307, 3),
        ("€", GSM, 2, 1),
        ("a" * 158 + "€", GSM, 160, 1),
        ("a" * 159 + "€", GSM, 161, 2),
        ("{}" * 80, GSM, 320, 3),  # 76 pairs per part: 152 + 152 + 16
        ("Price: 10€ [incl. VAT] ~ approx.", GSM, 36, 1),
        ("èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà@£$¥¤", GSM, 42, 1),
        ("ç", UCS2, 1, 1),  # only the capital Ç is in the default alphabet
        ("你" * 70, UCS2, 70, 1),
        ("你" * 71, UCS2, 71, 2),
        ("你" * 134, UCS2, 134, 2),
        ("你" * 135, UCS2, 135, 3),
        ("a" * 69 + "你", UCS2, 70, 1),  # one Chinese character makes the whole text UCS-2
        ("😀", UCS2, 2, 1),
        ("😀" * 35, UCS2, 70, 1),
        ("😀" * 36, UCS2, 72, 2),
    ],
)
def test_encoding_units_and_segment_count(
    text: str, encoding: SmsEncoding, units: int, segments: int
) -> None:
    result = segment_message(text)
    assert result.encoding is encoding
    assert detect_encoding(text) is encoding
    assert result.units == units
    assert result.segment_count == segments
    assert "".join(result.parts) == text


def test_empty_text_has_no_parts() -> None:
    result = segment_message("")
    assert result.parts == ()
    assert result.segment_count == 0


def test_concatenated_gsm_parts_hold_153_septets() -> None:
    parts = segment_message("a" * 400).parts
    assert [len(p) for p in parts] == [153, 153, 94]


def test_escape_pair_never_split_across_parts() -> None:
    # 152 septets, then "€" (2 septets) would end at 154: it moves to the next part.
    text = "a" * 152 + "€" + "a" * 10
    parts = segment_message(text).parts
    assert parts == ("a" * 152, "€" + "a" * 10)


def test_escape_pairs_make_more_segments_than_naive_division() -> None:
    # 306 septets would fit 2 parts of 153, but the escape pair at the boundary wastes a septet.
    text = "a" * 152 + "€" + "a" * 152
    result = segment_message(text)
    assert result.units == 306
    assert result.segment_count == 3
    assert result.parts == ("a" * 152, "€" + "a" * 151, "a")


def test_extension_char_exactly_filling_a_part_stays() -> None:
    text = "a" * 151 + "€" + "b" * 10
    assert segment_message(text).parts == ("a" * 151 + "€", "b" * 10)


def test_chinese_parts_hold_67_characters() -> None:
    text = "停电通知" * 40  # 160 characters
    parts = segment_message(text).parts
    assert [len(p) for p in parts] == [67, 67, 26]


def test_surrogate_pair_never_split_across_parts() -> None:
    text = "中" * 66 + "😀" + "中" * 10
    result = segment_message(text)
    assert result.units == 78
    assert result.parts == ("中" * 66, "😀" + "中" * 10)
    for part in result.parts:
        part.encode("utf-16-le")  # a lone surrogate would make this raise
        assert sum(2 if ord(c) > 0xFFFF else 1 for c in part) <= 67


def test_surrogate_pairs_make_more_segments_than_naive_division() -> None:
    text = "中" * 66 + "😀" + "中" * 66  # 134 code units: naive 2 parts, really 3
    result = segment_message(text)
    assert result.units == 134
    assert result.segment_count == 3


def test_combined_emoji_sequence_stays_in_one_part() -> None:
    family = "👨\u200d👩\u200d👧"  # man ZWJ woman ZWJ girl: 8 code units
    text = "中" * 63 + family + "中" * 10
    parts = segment_message(text).parts
    assert parts == ("中" * 63, family + "中" * 10)


def test_flag_pair_and_combining_mark_stay_together() -> None:
    flag = "🇫🇮"  # two regional indicators, 4 code units
    assert segment_message("中" * 65 + flag + "中" * 5).parts == ("中" * 65, flag + "中" * 5)
    accented = "e\u0301"  # e + combining acute: not GSM-7 as a sequence
    assert segment_message("中" * 66 + accented + "中" * 5).parts == (
        "中" * 66,
        accented + "中" * 5,
    )


def test_oversized_cluster_falls_back_to_code_points() -> None:
    zalgo = "a" + "\u0301" * 100  # one "character" longer than a part
    parts = segment_message(zalgo).parts
    assert "".join(parts) == zalgo
    assert all(len(p) <= 67 for p in parts)
