"""Sphinx configuration of gp_hotdistance's documentation.

Build it (after ``pip install -e ".[docs]"``) with::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The pages are Markdown (MyST) except the API reference (``api.rst``), which
autodoc builds from the installed package's docstrings: napoleon reads both
the gunpowder ``Args:`` sections of the nodes and the predictor and the
numpydoc sections of the numpy layer.
"""

import importlib.util

import gp_hotdistance

project = "gp_hotdistance"
author = "the gp_hotdistance developers"
copyright = "2026, the gp_hotdistance developers"
release = gp_hotdistance.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: ``$...$`` maths is not used; headings get anchors for links like
# errors.md#constructing-the-predictor
myst_heading_anchors = 3

# autodoc: members in the source's order, type hints in the description (the
# signatures stay short); nitpicky stays off, so that a type in a hint that
# Sphinx cannot link (numpy.typing, funlib, gunpowder) is not an error
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False
nitpicky = False
# HotDistanceLoss is a torch.nn.Module made on first use; without torch (the
# docs need not install it) autodoc documents it against a mocked torch
if importlib.util.find_spec("torch") is None:
    autodoc_mock_imports = ["torch"]

html_theme = "alabaster"
html_title = f"gp_hotdistance {release}"
