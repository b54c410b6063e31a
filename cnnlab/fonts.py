"""Chinese, Japanese and Korean text in figures: find an installed font that has the
characters and tell matplotlib to use it.

matplotlib's default font, DejaVu Sans, has no CJK characters: a class named 玫瑰 is drawn
as two empty boxes, with a "Glyph ... missing from font" warning for each character.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib import font_manager

__all__ = ["CJK_FONTS", "INSTALL_HINT", "missing_glyph_warnings", "use_cjk_font"]

# Families with Traditional and Simplified Chinese, in order of preference: Noto / Source
# Han (Linux, Colab after the install below), then those that come with Windows and macOS.
CJK_FONTS = (
    "Noto Sans CJK TC", "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans TC", "Noto Sans SC",
    "Source Han Sans TC", "Source Han Sans SC", "Microsoft JhengHei", "Microsoft YaHei",
    "PingFang TC", "PingFang SC", "Heiti TC", "WenQuanYi Zen Hei", "SimHei", "Arial Unicode MS",
)  # fmt: skip
_FILE_HINTS = ("cjk", "sourcehan", "wqy", "msjh", "msyh", "pingfang", "simhei", "notosanstc",
               "notosanssc", "arialuni")  # fmt: skip
INSTALL_HINT = (
    "No font with Chinese characters was found, so matplotlib draws them as boxes. Install "
    "one, then run use_cjk_font() again: on Colab or Debian/Ubuntu, "
    "`!apt-get -qq install fonts-noto-cjk` (no restart needed); on Windows and macOS one "
    "comes with the system (Microsoft JhengHei, PingFang TC)."
)


def _installed() -> set[str]:
    return {entry.name for entry in font_manager.fontManager.ttflist}


def _add_new_system_fonts() -> None:
    """Register CJK font files installed after matplotlib built its font list (an
    ``apt-get install`` in a running notebook)."""
    known = {entry.fname for entry in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        name = Path(path).name.lower().replace("-", "").replace("_", "")
        if path not in known and any(hint in name for hint in _FILE_HINTS):
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):  # an unreadable file: skip it
                continue


def use_cjk_font(preferred: tuple[str, ...] = CJK_FONTS, quiet: bool = False) -> str | None:
    """Make matplotlib draw Chinese (and Japanese, Korean) text with the first installed
    font of ``preferred``, and return its name; return None, after printing what to
    install, when there is none. Also draws the minus sign as a hyphen, which many CJK
    fonts lack.

    Example:
        >>> name = use_cjk_font(quiet=True)  # e.g. 'Noto Sans CJK TC', or None
        >>> name is None or name in CJK_FONTS
        True
    """
    found = next((name for name in preferred if name in _installed()), None)
    if found is None:
        _add_new_system_fonts()
        found = next((name for name in preferred if name in _installed()), None)
    if found is None:
        if not quiet:
            print(INSTALL_HINT)
        return None
    others = [name for name in plt.rcParams["font.sans-serif"] if name != found]
    plt.rcParams["font.sans-serif"] = [found, *others]
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["axes.unicode_minus"] = False
    return found


def missing_glyph_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """The characters matplotlib could not draw, from warnings caught while drawing
    (``warnings.catch_warnings(record=True)`` around ``fig.canvas.draw()``).

    Example:
        >>> missing_glyph_warnings([])
        []
    """
    found = []
    for warning in caught:
        match = re.match(r"Glyph (\d+) .*missing from font", str(warning.message))
        if match and chr(int(match[1])) not in found:
            found.append(chr(int(match[1])))
    return found
