"""The public API is one list: the package's ``__all__``, the modules' and the
API reference's (docs/api.rst)."""

from pathlib import Path

import gp_hotdistance
from gp_hotdistance import distance, weights

API_REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "api.rst"


def test_the_package_exports_every_public_function_of_its_modules():
    for module in (distance, weights):
        for name in module.__all__:
            assert name in gp_hotdistance.__all__, f"{module.__name__}.{name}"
            assert getattr(gp_hotdistance, name) is getattr(module, name)


def test_everything_in_all_exists():
    for name in gp_hotdistance.__all__:
        assert hasattr(gp_hotdistance, name), name


def test_the_api_reference_documents_every_public_name():
    # each name by its full path in an autodoc directive (autoclass,
    # autofunction, automodule), so that the site shows its docstring
    text = API_REFERENCE.read_text()
    missing = [name for name in gp_hotdistance.__all__ if f":: gp_hotdistance.{name}\n" not in text]
    assert missing == []


def test_public_classes_and_functions_name_a_public_module():
    # reprs, docs and pickles show __module__: a private one would send readers
    # (and unpickling) to an implementation detail
    private = []
    for name in gp_hotdistance.__all__:
        module = getattr(getattr(gp_hotdistance, name), "__module__", None)
        if module is not None and any(part.startswith("_") for part in module.split(".")):
            private.append(f"{name}: {module}")
    assert private == []


def test_the_former_core_module_warns_that_it_is_deprecated():
    import importlib
    import sys

    import pytest

    sys.modules.pop("gp_hotdistance.core", None)
    with pytest.warns(DeprecationWarning, match="gp_hotdistance.core is deprecated"):
        core = importlib.import_module("gp_hotdistance.core")
    assert core.hot_distance_target is gp_hotdistance.hot_distance_target
