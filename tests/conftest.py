import os
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
