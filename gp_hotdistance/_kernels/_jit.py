"""The one decorator of the compiled kernels (private).

Every kernel is compiled by numba and cached on disk where numba finds a
place for its cache: ``NUMBA_CACHE_DIR`` if set, else beside the source or
in the user's cache folder. In a read-only install with no writable cache
folder numba refuses ``cache=True`` when the function is decorated, which
would make the package fail to import; the kernels are then compiled
without a disk cache, in each process that calls them.
"""

import logging

import numba

logger = logging.getLogger(__name__)

_reported = False


def jit(**options):
    """``numba.njit(cache=True, **options)``, or without the cache where
    numba has nowhere to keep it (one DEBUG line per process says so)."""

    def decorate(function):
        global _reported
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError as error:
            # numba's "cannot cache function ...: no locator available"
            if "cannot cache" not in str(error):
                raise
            if not _reported:
                _reported = True
                logger.debug(
                    "numba has no writable cache folder for the kernels (%s); they "
                    "are compiled in each process. Set NUMBA_CACHE_DIR to a writable "
                    "folder to keep them.",
                    error,
                )
            return numba.njit(**options)(function)

    return decorate
