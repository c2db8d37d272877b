import importlib.util
import os
import re
import sys

# the oracles sit beside the tests and are imported as a plain module
sys.path.insert(0, os.path.dirname(__file__))

# hypothesis profiles: "ci" (the default) keeps the property tests under a
# minute on 2 cores; HYPOTHESIS_PROFILE=thorough runs many more examples. No
# example database, so that the tests write nothing into the checkout.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=300, deadline=None, database=None)
settings.register_profile("thorough", max_examples=1000, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_report_header(config):
    """The stack under test, in the header of every run (CI runs two)."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("gunpowder", "funlib.persistence", "zarr", "daisy", "numpy", "numba", "torch"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return "stack: " + ", ".join(found)


#: an example line that imports torch
_TORCH_IMPORT = re.compile(r"^\s*(import|from)\s+torch\b", re.MULTILINE)


def pytest_collection_modifyitems(config, items):
    """Doctests whose examples import torch skip, with the reason, where torch
    is missing (as the tests that need it do); every other doctest runs."""
    if importlib.util.find_spec("torch") is not None:
        return
    import pytest

    skip = pytest.mark.skip(reason="needs the torch extra (the example imports torch)")
    for item in items:
        doctest = getattr(item, "dtest", None)  # pytest's DoctestItem
        if doctest is not None and any(_TORCH_IMPORT.search(e.source) for e in doctest.examples):
            item.add_marker(skip)
