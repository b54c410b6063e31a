"""Sphinx configuration of the course's website; ``docs/build.py`` assembles the pages
into ``_build/site-src`` next to a copy of this file and runs Sphinx there.

Everything the pages need is installed by ``pip install -e ".[site]"``: the theme, MathJax
(sphinx-mathjax-offline) and Sphinx's own search, so the build and the site work offline.
"""

import importlib.util
import json
import os

project = "cnnlab"
author = "The cnnlab authors"
copyright = "the cnnlab authors, MIT licence"
html_title = "cnnlab: convolutional neural networks with PyTorch"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
# MathJax from the sphinx-mathjax-offline package, not from a CDN. Its files are served
# from here rather than by loading it as an extension, which would make Sphinx read the
# pages one at a time (it does not declare itself safe for parallel reading).
_mathjax = importlib.util.find_spec("sphinx-mathjax-offline").submodule_search_locations[0]
mathjax_path = "mathjax/tex-chtml.js"
exclude_patterns = ["_build", "downloads/**", "**.ipynb_checkpoints"]

# The notebooks arrive executed (docs/executed.py); Sphinx only renders them.
nb_execution_mode = "off"
nb_output_stderr = "show"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "attrs_inline"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True

_site = json.loads(os.environ.get("CNNLAB_SITE", "{}"))
html_theme = "sphinx_book_theme"
html_static_path = ["_static", os.path.join(_mathjax, "static")]
html_css_files = ["cnnlab.css"]
html_favicon = "_static/favicon.svg"  # else every browser asks for /favicon.ico, a 404
html_theme_options = {
    "repository_url": _site.get("repository", ""),
    "use_repository_button": bool(_site.get("repository")),
    "home_page_in_toc": True,
    "show_toc_level": 2,
    # The sidebar lists chapters and API pages (two levels, titles only). Resolving the
    # theme's default of four levels for every page cost 2.5 of the 31 s of a smoke build
    # (measured 2026-12-02) and drew the same sidebar.
    "max_navbar_depth": 2,
    "navigation_with_keys": False,
    "use_download_button": False,  # it offers the page's source, which the site leaves out
}
if _site.get("mode") == "smoke":
    html_theme_options["announcement"] = (
        "Smoke build: every number, figure and table on these pages comes from a run of "
        "seconds on stand-in data and random weights. They show that the code runs and "
        "mean nothing else."
    )
html_context = {"default_mode": "light"}  # the theme's script wants a mode from the start
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = False
