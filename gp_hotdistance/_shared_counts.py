"""Counts in memory shared by a process and the workers it starts (private).

:class:`~gp_hotdistance.BalanceHotDistance` keeps its moving class counts in
a :class:`SharedCounts`, so that the copies of the node in ``gp.PreCache``'s
worker processes all count into the counts the main process saves.
"""

import contextlib
import mmap
import os
import tempfile
import threading
import weakref
from multiprocessing.context import get_spawning_popen
from multiprocessing.reduction import DupFd

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: counts are not shared across processes
    fcntl = None


class SharedCounts:
    """An ``int64`` array of counts in memory shared by processes.

    The memory is a small anonymous file (``memfd`` on Linux, an unlinked
    temporary file elsewhere), so nothing is left behind when the processes
    end, however they end. It reaches other processes in two ways: a forked
    process inherits the mapping, and a process that multiprocessing starts
    with ``spawn`` or ``forkserver`` receives the file descriptor while the
    object is pickled for it (the way multiprocessing passes its own shared
    memory). Pickled any other way (to disk, or into an exception), a copy of
    the counts travels (:attr:`copied` is true there), which is not shared
    with the original but is shared with the processes started from it.

    A process killed at any moment loses nothing and blocks nobody: the file
    holds two buffers and the index of the current one. A writer fills the
    other buffer, then publishes it with a one-byte store of its index, so a
    batch is either wholly counted or not at all. Writers and readers take a
    POSIX record lock on the file (``fcntl.lockf``), which the kernel
    releases when its holder dies. Where there is no ``fcntl`` (Windows) the
    counts are this process's only (:attr:`shareable` is false), and pickled
    as a copy.
    """

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.copied = False
        self._attach(anonymous_file(self._nbytes()))

    def _nbytes(self):
        # one int64 for the index of the current buffer, then two buffers
        return 8 * (1 + 2 * int(np.prod(self.shape)))

    @property
    def shareable(self):
        """Whether processes started from this one can share the counts."""
        return self._fd is not None

    def _attach(self, fd):
        self._fd = fd
        if fd is None:  # no fcntl (Windows): memory of this process only
            memory = mmap.mmap(-1, self._nbytes())
        else:
            weakref.finalize(self, os.close, fd)
            memory = mmap.mmap(fd, self._nbytes())
        self._current = np.frombuffer(memory, dtype=np.uint8, count=1)
        self._buffers = np.frombuffer(memory, dtype=np.int64, offset=8).reshape((2,) + self.shape)
        self._pid = os.getpid()
        self._thread_lock = threading.Lock()

    def __getstate__(self):
        if self.shareable and get_spawning_popen() is not None:
            # a process being started by multiprocessing: share the file
            return {"shape": self.shape, "fd": DupFd(self._fd)}
        return {"shape": self.shape, "counts": self.snapshot()}

    def __setstate__(self, state):
        self.shape = tuple(state["shape"])
        self.copied = "fd" not in state
        if self.copied:
            self._attach(anonymous_file(self._nbytes()))
            self.assign(state["counts"])
        else:
            self._attach(state["fd"].detach())

    @contextlib.contextmanager
    def _locked(self):
        if self._pid != os.getpid():
            # forked: another thread may have held the lock at the fork
            self._pid = os.getpid()
            self._thread_lock = threading.Lock()
        with self._thread_lock:
            if fcntl is None:
                yield
                return
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def snapshot(self):
        """A copy of the counts."""
        with self._locked():
            return self._buffers[self._current[0]].copy()

    def add(self, increment):
        """Add ``increment`` to the counts, wholly or (if killed) not at all."""
        with self._locked():
            current = self._current[0]
            np.add(self._buffers[current], increment, out=self._buffers[1 - current])
            self._current[0] = 1 - current

    def assign(self, values):
        """Set the counts to ``values``, wholly or (if killed) not at all."""
        with self._locked():
            current = self._current[0]
            self._buffers[1 - current] = values
            self._current[0] = 1 - current


def anonymous_file(nbytes):
    """A descriptor of a new file of ``nbytes`` zeros that has no name, or
    ``None`` where files cannot be locked (no ``fcntl``)."""
    if fcntl is None:
        return None
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("gp_hotdistance_counts", os.MFD_CLOEXEC)
    else:
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix="gp_hotdistance_counts_", dir=folder)
        os.unlink(path)
    os.ftruncate(fd, nbytes)
    return fd
