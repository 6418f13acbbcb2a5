from __future__ import annotations

import pytest

from sms_gateway.keywords import ReplyIntent, classify_reply, normalise_reply

R = ReplyIntent


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        # opt-out, every keyword, any case, trimmed, full-width
        ("STOP", R.OPT_OUT),
        ("stop", R.OPT_OUT),
        ("  Stop \n", R.OPT_OUT),
        ("UNSUBSCRIBE", R.OPT_OUT),
        ("cancel", R.OPT_OUT),
        ("End", R.OPT_OUT),
        ("QUIT", R.OPT_OUT),
        ("StopAll", R.OPT_OUT),
        ("退订", R.OPT_OUT),
        (" 退订。", R.OPT_OUT),
        ("TD", R.OPT_OUT),
        ("td", R.OPT_OUT),
        ("ＳＴＯＰ", R.OPT_OUT),
        ("ｓｔｏｐ！", R.OPT_OUT),
        ("\u3000ＴＤ\u3000", R.OPT_OUT),
        ("STOP.", R.OPT_OUT),
        # opt-in
        ("START", R.OPT_IN),
        ("unstop", R.OPT_IN),
        ("ＳＴＡＲＴ", R.OPT_IN),
        # help
        ("HELP", R.HELP),
        ("help?", R.HELP),
        ("ＨＥＬＰ", R.HELP),
        # satisfaction 1-5, ASCII and full-width digits
        ("1", R.SATISFACTION_1),
        ("2", R.SATISFACTION_2),
        (" 3 ", R.SATISFACTION_3),
        ("4", R.SATISFACTION_4),
        ("5", R.SATISFACTION_5),
        ("１", R.SATISFACTION_1),
        ("５", R.SATISFACTION_5),
        ("0", R.OTHER),
        ("6", R.OTHER),
        ("10", R.OTHER),
        # yes / no
        ("Y", R.CONFIRM_YES),
        ("y", R.CONFIRM_YES),
        ("Ｙ", R.CONFIRM_YES),
        ("yes", R.CONFIRM_YES),
        ("是", R.CONFIRM_YES),
        ("N", R.CONFIRM_NO),
        ("ｎ", R.CONFIRM_NO),
        ("no", R.CONFIRM_NO),
        ("否", R.CONFIRM_NO),
        # everything else
        ("", R.OTHER),
        ("   ", R.OTHER),
        ("please don't stop the repair", R.OTHER),
        ("STOP IT", R.OTHER),
        ("stopp", R.OTHER),
        ("谢谢", R.OTHER),
        ("Thanks, the power is back", R.OTHER),
    ],
)
def test_classify_reply(text: str, intent: ReplyIntent) -> None:
    assert classify_reply(text) is intent


def test_satisfaction_score() -> None:
    assert [classify_reply(str(n)).satisfaction_score for n in range(1, 6)] == [1, 2, 3, 4, 5]
    assert R.OPT_OUT.satisfaction_score is None
    assert R.OTHER.satisfaction_score is None


def test_normalise_reply() -> None:
    assert normalise_reply(" Ｓｔｏｐ！ ") == "stop"
    assert normalise_reply("「退订」") == "退订"
