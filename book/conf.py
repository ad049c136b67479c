"""Sphinx configuration of the course book (``make book``; ``scripts/build_book.py`` stages the sources).

The chapters are the committed, executed notebooks: MyST-NB renders their saved outputs and never runs a
cell. Math is typeset by a MathJax copy shipped with ``sphinx-mathjax-offline``, so the pages need no
network. The launch links (Colab, Binder) and the repository button come from the one repository URL in
``pyproject.toml`` (``[project.urls] Repository``).
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

project = "timelab"
author = "the timelab authors"
copyright = "the timelab authors, MIT licence"
release = PROJECT["version"]

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx-mathjax-offline"]
nb_execution_mode = "off"  # the notebooks are committed executed; the book shows what they saved
nb_output_stderr = "remove"  # warnings a kernel printed are no part of the course
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# Widgets need a live kernel: their saved text form shows, and no widget script is fetched from a CDN.
nb_ipywidgets_js: dict = {}
suppress_warnings = ["mystnb.unknown_mime_type"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"

exclude_patterns = ["student/**"]  # the student copies are downloads (students.md links them), not pages

html_theme = "sphinx_book_theme"
html_title = "timelab: a course on TIME"
html_theme_options = {
    "repository_url": PROJECT["urls"]["Repository"],
    "repository_branch": "main",
    "path_to_docs": "",  # the staged chapters sit at notebooks/NN_slug.ipynb, as in the repository
    "use_repository_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com", "binderhub_url": "https://mybinder.org",
                       "notebook_interface": "jupyterlab"},
    "show_toc_level": 2,
}
