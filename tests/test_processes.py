"""The package in other people's processes (issue 26): no process-wide
setting changed, numba code of the user's own running beside the kernels,
forked, spawned and forkserver children, threads of one process, read-only
installs and ``NUMBA_CACHE_DIR``.

The subprocesses share one numba cache folder, filled once per session (and
checked to be where the kernels' cache went), so that they do not each
compile the kernels; the read-only install compiles without any.
"""

import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import gp_hotdistance as hd
from oracles import doubled_grid_face_distance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")

#: the user's own parallel numba code, in a file so that numba caches it
USER_CODE = """
import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def user_sum(x):
    total = 0.0
    for i in numba.prange(x.shape[0]):
        total += x[i]
    return total


def check(rounds):
    x = np.ones(100_000)
    for _ in range(rounds):
        if user_sum(x) != x.size:
            raise SystemExit("user_sum is wrong")
"""

#: every kernel the package has, once
WARM_UP = """
import numpy as np
import gp_hotdistance as hd
gt = np.zeros((2, 6, 7, 8), np.uint8)
gt[0, 2:4, 1:5, 3:7] = 1
gt[1, :, :3] = 1
mask = np.ones((6, 7, 8), np.uint8)
mask[0, 0, 0] = 0
target = hd.hot_distance_target(gt, (2.0, 1.0, 1.0), 3.0)
hd.hot_distance_weights(gt, target, mask, (2.0, 1.0, 1.0), 3.0, mask_distances=True)
hd.distance_mask(target[2:], mask, (2.0, 1.0, 1.0), 3.0)
hd.face_distance(np.arange(336, dtype=np.uint64).reshape(6, 7, 8) % 5)
"""


def _clean_env(**extra):
    """The environment of a child: this one without numba's settings (so
    numba runs with its defaults), with ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.pop("OMP_NUM_THREADS", None)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, TESTS])
    env.update(extra)
    return env


def _run(script, env, timeout=600, **options):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **options,
    )
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    """A folder with the user's code and a numba cache filled with every
    kernel; the environment for children that use them."""
    folder = tmp_path_factory.mktemp("processes")
    (folder / "usercode.py").write_text(USER_CODE)
    cache = folder / "numba_cache"
    cache.mkdir()
    env = _clean_env(NUMBA_CACHE_DIR=str(cache))
    env["PYTHONPATH"] = os.pathsep.join([str(folder), ROOT, TESTS])
    _run(WARM_UP + "\nimport usercode\nusercode.check(1)\n", env)
    return folder, env


def test_numba_cache_dir_is_honoured(shared):
    """The child that filled the cache had NUMBA_CACHE_DIR set: the kernels'
    index files (named ``<module>.<function>-<line>.<python>.nbi``) are there."""
    folder, _ = shared
    cached = [
        name
        for _, _, files in os.walk(folder / "numba_cache")
        for name in files
        if name.endswith(".nbi")
    ]
    assert any(name.startswith("face._in_plane_pass") for name in cached), cached
    assert any(name.startswith("passes.sweep_columns") for name in cached), cached


def test_user_parallel_numba_beside_the_kernels(shared):
    """A user's parallel=True function from 2 threads after importing the
    package, and beside the package's kernels on 2 threads each: under
    numba's default threading layer this ran into "Numba workqueue threading
    layer is terminating: Concurrent access" (SIGABRT) while the package
    switched the layer at import."""
    _, env = shared
    _run(
        """
        import threading
        import numpy as np
        import gp_hotdistance as hd
        import usercode

        gt = (np.random.default_rng(0).random((1, 20, 24, 28)) < 0.3).astype(np.uint8)

        def kernels():
            for _ in range(5):
                hd.hot_distance_target(gt, (1.0, 1.0, 1.0), 4.0, threads=2)

        def user():
            usercode.check(50)

        for workers in ([user, user], [user, user, kernels, kernels]):
            threads = [threading.Thread(target=w) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        print("done")
        """,
        env,
    )


def test_precache_forks_after_user_parallel_code_and_kernels(shared):
    """The main process runs the user's parallel numba code and the package's
    kernels, then gp.PreCache forks 2 workers that run the kernels on 2
    threads each: they deliver their batches (GNU OpenMP aborts a forked
    child that uses it after its parent did; the kernels do not use it)."""
    _, env = shared
    result = _run(
        """
        import dask
        import gunpowder as gp
        import numpy as np
        from funlib.persistence import Array
        import gp_hotdistance as hd
        import usercode

        dask.config.set(scheduler="synchronous")
        usercode.check(3)
        rng = np.random.default_rng(1)
        gt = (rng.random((1, 40, 40, 40)) < 0.2).astype(np.uint8)
        mask = np.ones((40, 40, 40), np.uint8)
        mask[:5] = 0
        hd.hot_distance_target(gt, (4.0, 4.0, 4.0), 8.0, threads=2)

        def array(data):
            channels = data.ndim - 3
            return Array(data, offset=(0, 0, 0), voxel_size=(4, 4, 4),
                         axis_names=["c^"] * channels + ["z", "y", "x"],
                         types=["channel"] * channels + ["space"] * 3)

        GT, MASK, TARGET, WEIGHTS = (gp.ArrayKey(n) for n in ("GT", "MASK", "TARGET", "WEIGHTS"))
        predictor = hd.HotDistancePredictor(["a"], 8.0, mask_distances=True, threads=2)
        pipeline = (
            (gp.ArraySource(GT, array(gt), interpolatable=False),
             gp.ArraySource(MASK, array(mask), interpolatable=False))
            + gp.MergeProvider()
            + gp.RandomLocation()
            + hd.AddHotDistance(predictor, GT, TARGET, MASK)
            + hd.BalanceHotDistance(predictor, GT, TARGET, WEIGHTS, MASK)
            + gp.PreCache(cache_size=4, num_workers=2)
        )
        request = gp.BatchRequest()
        request[TARGET] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (48, 48, 48)))
        request[WEIGHTS] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (48, 48, 48)))
        with gp.build(pipeline):
            for _ in range(6):
                batch = pipeline.request_batch(request)
                assert batch[TARGET].data.shape == (2, 12, 12, 12)
                assert np.isfinite(batch[WEIGHTS].data).all()
        print("delivered")
        """,
        env,
    )
    assert "delivered" in result.stdout


def test_no_process_wide_setting_changes(shared):
    """After import and calls on 2 threads: numba's threading layer and
    thread count, torch's thread count (where installed) and the
    environment are what they were, and numba's own thread pool was never
    started."""
    _, env = shared
    _run(
        """
        import os
        import numba
        import numba.np.ufunc.parallel as parallel
        try:
            import torch
        except ImportError:
            torch = None
        # numba.get_num_threads() would start numba's thread pool: its value
        # before is numba's default
        before = (numba.config.THREADING_LAYER, numba.config.NUMBA_NUM_THREADS,
                  torch and torch.get_num_threads(), dict(os.environ))
        import numpy as np
        import gp_hotdistance as hd
        gt = (np.random.default_rng(2).random((2, 9, 10, 11)) < 0.4).astype(np.uint8)
        target = hd.hot_distance_target(gt, (2.0, 1.0, 1.0), 3.0, threads=2)
        hd.hot_distance_weights(gt, target, gt[0], (2.0, 1.0, 1.0), 3.0,
                                mask_distances=True, threads=2)
        hd.face_distance(gt[0].astype(">u8"), threads=2)
        assert not parallel._is_initialized, "the package started numba's thread pool"
        after = (numba.config.THREADING_LAYER, numba.get_num_threads(),
                 torch and torch.get_num_threads(), dict(os.environ))
        assert after == before, (before[:3], after[:3])
        print("unchanged")
        """,
        env,
    )


READ_ONLY_CHILD = """
import logging, os, sys
import numpy as np
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="LOG %(name)s %(message)s")
logging.getLogger("gp_hotdistance").setLevel(logging.DEBUG)
import gp_hotdistance as hd
from oracles import brute_force_face_distance
assert hd.__file__.startswith(os.environ["PYTHONPATH"]), hd.__file__
assert not os.access(os.path.dirname(hd.__file__), os.W_OK)
assert not os.access(os.environ["HOME"], os.W_OK)
gt = np.zeros((1, 5, 6, 7), np.uint8)
gt[0, 1:4, 2:5, 1:6] = 1
gt[0, 0, 0, 0] = 1
target = hd.hot_distance_target(gt, (3.0, 1.0, 2.0), 4.0)
d = brute_force_face_distance(gt[0], (3.0, 1.0, 2.0))
expected = np.tanh(np.where(gt[0] != 0, d, -d) / 4.0)
assert np.abs(target[1] - expected).max() < 2e-6
assert (target[0] == gt[0]).all()
print("computed")
"""


def _read_only_command(folder, script):
    """The command that runs ``script`` with ``folder`` read-only: made so by
    its modes, or, for root (whom modes do not stop), by a read-only bind
    mount in a mount namespace of the child's own (``unshare``)."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        for path, dirs, files in os.walk(folder, topdown=False):
            for name in files:
                os.chmod(os.path.join(path, name), 0o444)
            for name in dirs:
                os.chmod(os.path.join(path, name), 0o555)
        os.chmod(folder, 0o555)
        return [sys.executable, script]
    unshare = shutil.which("unshare")
    probe = unshare and subprocess.run(
        [
            unshare,
            "-m",
            "sh",
            "-c",
            f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" "{folder}"',
        ],
        capture_output=True,
    )
    if not probe or probe.returncode != 0:
        pytest.skip("running as root without unshare -m: cannot make a folder read-only")
    return [
        unshare,
        "-m",
        "sh",
        "-c",
        'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$1" "$2"',
        folder,
        sys.executable,
        script,
    ]


def test_read_only_install_without_a_cache_folder(tmp_path):
    """The package copied into a read-only folder, HOME read-only, no
    NUMBA_CACHE_DIR: numba has nowhere to cache the kernels (it refused to
    decorate them, so the import failed); they compile in the process, the
    target equals brute force, and one DEBUG line of the package says so."""
    folder = tmp_path / "install"
    site, home = folder / "site", folder / "home"
    # the package under test: the checkout's, or the installed wheel's
    shutil.copytree(
        os.path.dirname(hd.__file__),
        site / "gp_hotdistance",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(os.path.join(TESTS, "oracles.py"), site)
    home.mkdir()
    (folder / "child.py").write_text(READ_ONLY_CHILD)
    command = _read_only_command(str(folder), str(folder / "child.py"))
    env = _clean_env(HOME=str(home), PYTHONPATH=str(site))
    env.pop("XDG_CACHE_HOME", None)
    try:
        result = subprocess.run(
            command, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=600
        )
    finally:
        for path, _dirs, _files in os.walk(folder):
            os.chmod(path, 0o755)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "computed" in result.stdout
    logged = [line for line in result.stdout.splitlines() if line.startswith("LOG gp_hotdistance")]
    # one line, and it says that the kernels run without a disk cache
    assert len(logged) == 1 and "NUMBA_CACHE_DIR" in logged[0], logged
    assert "cannot cache" not in result.stderr


# ---------------------------------------------------------------------------
# threads of one process, and children of every start method (in this process)
# ---------------------------------------------------------------------------


def _cases():
    rng = np.random.default_rng(11)
    cases = []
    # large enough for 2 threads (the kernels run small arrays on one)
    for n, shape in enumerate([(2, 27, 29, 33), (1, 31, 19, 40), (3, 96, 100), (2, 9000)]):
        gt = (rng.random(shape) < 0.1 + 0.1 * n).astype(np.uint8)
        mask = (rng.random(shape[1:]) < 0.9).astype(np.uint8)
        voxel_size = (4.0, 2.0, 3.0)[-len(shape) + 1 :]
        cases.append((gt, mask, voxel_size, 6.0 + n))
    return cases


def _compute(case, threads):
    gt, mask, voxel_size, scale = case
    target = hd.hot_distance_target(gt, voxel_size, scale, threads=threads)
    weights, counts = hd.hot_distance_weights(
        gt, target, mask, voxel_size, scale, mask_distances=True, threads=threads
    )
    return target, weights, counts


def _same(a, b):
    return all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b))


def test_four_threads_at_once_equal_serial():
    cases = _cases()
    serial = [_compute(case, 1) for case in cases]
    results = [None] * len(cases)
    start = threading.Barrier(len(cases))

    def work(i):
        start.wait()
        for _ in range(3):
            results[i] = _compute(cases[i], 1 + i % 2)
            assert _same(results[i], serial[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, expected in zip(results, serial):
        assert got is not None and _same(got, expected)


def _child(index):
    """In a child process: the results of case ``index`` on 2 threads."""
    return _compute(_cases()[index], 2)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_children_of_every_start_method_give_the_same_results(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    expected = [_compute(case, 2) for case in _cases()]  # the parent used the kernels
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        got = pool.map(_child, range(len(expected)))
    for g, e in zip(got, expected):
        assert _same(g, e)


@pytest.mark.parametrize("index", range(4))
def test_the_cases_agree_with_the_doubled_grid(index):
    """The cases the threads and children compute are right, not only alike."""
    gt, _, voxel_size, scale = _cases()[index]
    target = _compute(_cases()[index], 2)[0]
    for c in range(gt.shape[0]):
        d = doubled_grid_face_distance(gt[c], voxel_size).astype(np.float64)
        expected = np.tanh(np.where(gt[c] != 0, d, -d) / scale)
        assert np.abs(target[gt.shape[0] + c] - expected).max() < 2e-6
