"""Chinese labels in figures: a CJK font is found, registered after a late install, or
named for the learner to install; the boxes matplotlib draws without one are reported."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import pytest
from matplotlib import font_manager

from cnnlab import fonts


@pytest.fixture
def fresh_rc():
    with plt.rc_context():
        yield


def _entry(name: str, fname: str = "/fonts/x.otf"):
    return font_manager.FontEntry(fname=fname, name=name)


def test_an_installed_cjk_font_becomes_matplotlibs_first_choice(monkeypatch, fresh_rc):
    monkeypatch.setattr(
        font_manager.fontManager, "ttflist", [_entry("DejaVu Sans"), _entry("PingFang TC")]
    )
    assert fonts.use_cjk_font() == "PingFang TC"
    assert plt.rcParams["font.sans-serif"][0] == "PingFang TC"
    assert plt.rcParams["axes.unicode_minus"] is False


def test_a_font_installed_after_start_is_registered(monkeypatch, fresh_rc):
    """`apt-get install fonts-noto-cjk` in a running notebook: the file is on disk but not
    in matplotlib's list until it is added."""
    entries = [_entry("DejaVu Sans")]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", entries)
    path = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda: [path])
    monkeypatch.setattr(font_manager.fontManager, "addfont",
                        lambda p: entries.append(_entry("Noto Sans CJK JP", p)))  # fmt: skip
    assert fonts.use_cjk_font() == "Noto Sans CJK JP"


def test_without_a_cjk_font_it_says_what_to_install(monkeypatch, capsys, fresh_rc):
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [_entry("DejaVu Sans")])
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda: ["/fonts/DejaVuSans.ttf"])
    before = list(plt.rcParams["font.sans-serif"])
    assert fonts.use_cjk_font() is None
    assert "apt-get -qq install fonts-noto-cjk" in capsys.readouterr().out
    assert plt.rcParams["font.sans-serif"] == before


def test_the_characters_drawn_as_boxes_are_named(fresh_rc):
    plt.rcParams["font.sans-serif"] = ["DejaVu Sans"]
    plt.rcParams["font.family"] = "sans-serif"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots()
        ax.set_title("玫瑰 rose 玫")
        fig.canvas.draw()
    plt.close(fig)
    assert fonts.missing_glyph_warnings(caught) == ["玫", "瑰"]
