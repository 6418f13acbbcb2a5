"""A CJK-capable font for every widget: Kivy's default Roboto has no Chinese glyphs (boxes).

The font found first is registered under Kivy's default name ``Roboto``, so every Label, Button
and TextInput uses it without a ``font_name`` of its own (Noto Sans CJK has Latin glyphs too):

1. a font shipped in the APK: ``mobile_app/app/fonts/*.otf|ttf|ttc`` (buildozer.spec includes the
   extensions; the Android build copies NotoSansSC-Regular.otf there — see docs/handset.md);
2. the desktop's Noto Sans CJK (Debian/Ubuntu ``fonts-noto-cjk``), then Droid Sans Fallback and
   WenQuanYi.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "fonts"
DESKTOP = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/system/fonts/NotoSansCJK-Regular.ttc",  # most Android phones carry it too
)
BOLD = {"NotoSansCJK-Regular.ttc": "NotoSansCJK-Bold.ttc"}


def find_cjk_font(extra: Path | None = None) -> Path | None:
    candidates = [extra] if extra else []
    candidates += sorted(p for p in SHIPPED.glob("*") if p.suffix.lower() in (".otf", ".ttf", ".ttc"))
    candidates += [Path(p) for p in DESKTOP]
    return next((p for p in candidates if p and p.is_file()), None)


def register_cjk_font(extra: Path | None = None) -> Path | None:
    """Register the CJK font as Kivy's default; returns its path (None: none found, boxes ahead)."""
    from kivy.core.text import LabelBase

    font = find_cjk_font(extra)
    if font is None:
        return None
    bold = font.with_name(BOLD.get(font.name, font.name))
    LabelBase.register(name="Roboto", fn_regular=str(font),
                       fn_bold=str(bold if bold.is_file() else font))
    return font
