"""The machine a benchmark runs on, and numba's target on it.

The package's kernels are compiled by numba for the CPU they run on, while
seung-lab edt ships compiled: the same commit gives other ratios on another
CPU, so each report starts with :func:`describe`'s line, and a table is only
comparable with one from the same line. ``--avx2`` (:func:`rerun_for_avx2`)
has numba compile for AVX2 without AVX-512 on a CPU that has both: the code
that CPUs with AVX2 only (many of Intel's desktop and laptop CPUs, AMD Zen
1 to 3) run, measured on this one (docs/dev/optimisation_history.md).
"""

import os
import platform
import sys
from importlib import metadata

#: numba's target for an x86 CPU with AVX2 but not AVX-512 (the environment
#: variables numba reads at import; its cache keeps each target's code apart)
AVX2_TARGET = {
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": "+avx,+avx2,+fma,+sse4.2,+bmi,+bmi2,+popcnt,+f16c,+lzcnt,+movbe,"
    "-avx512f,-avx512bw,-avx512dq,-avx512vl,-avx512cd",
}


def _cpu_model():
    """The first CPU's model name, family and model number from /proc/cpuinfo
    (Linux; a virtual machine may name only the vendor's line, "AMD EPYC"),
    else what the platform module says."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first CPU's block ends
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    if "model name" not in fields:  # not Linux, or not x86
        return platform.processor() or platform.machine() or "unknown CPU"
    numbers = "".join(f", {key} {fields[key]}" for key in ("cpu family", "model") if key in fields)
    return fields["model name"] + numbers


def _simd(features):
    """The widest x86 SIMD extension among LLVM's feature flags, or None."""
    for flag, name in (
        ("avx512f", "AVX-512"),
        ("avx2", "AVX2"),
        ("avx", "AVX"),
        ("sse4.2", "SSE4.2"),
    ):
        if features.get(flag):
            return name
    return None


def numba_target():
    """What numba compiles for: the host CPU's name and the widest x86 SIMD of
    its features, or those that ``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES``
    ask for, as one string."""
    import llvmlite.binding as llvm
    import numba

    name = numba.config.CPU_NAME or llvm.get_host_cpu_name()
    if numba.config.CPU_FEATURES is None:
        simd = _simd(llvm.get_host_cpu_features())
    else:
        # "+avx2,-avx512f,...", on top of what the CPU name implies
        flags = [flag.strip() for flag in numba.config.CPU_FEATURES.split(",")]
        simd = _simd({flag[1:]: flag[0] == "+" for flag in flags if flag})
        simd = f"{simd or 'features'} as NUMBA_CPU_FEATURES sets"
    return f"{name} ({simd})" if simd else name


def rerun_for_avx2():
    """Run this script again, from the start, with numba compiling for
    :data:`AVX2_TARGET` (and so its subprocesses too). Returns if numba
    already does, or if the CPU has no AVX-512 (numba's own target is then
    the one to measure); exits if the CPU has no AVX2, whose code would not
    run, or where ``os.execve`` cannot replace the process (not POSIX)."""
    import llvmlite.binding as llvm

    if all(os.environ.get(name) == value for name, value in AVX2_TARGET.items()):
        return
    host = llvm.get_host_cpu_features()
    if not host.get("avx2"):
        sys.exit("--avx2: this CPU has no AVX2")
    if not host.get("avx512f"):
        print("--avx2: this CPU has no AVX-512, numba keeps its own target", file=sys.stderr)
        return
    if os.name != "posix":
        sys.exit("--avx2 runs the script again with os.execve, which needs POSIX")
    sys.stdout.flush()
    sys.stderr.flush()
    # orig_argv keeps the interpreter's own options (-u, -X ...)
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, **AVX2_TARGET})


def parse_args(parser):
    """``parser.parse_args()`` with the ``--avx2`` option added; with it, the
    script runs again first (:func:`rerun_for_avx2`)."""
    parser.add_argument(
        "--avx2",
        action="store_true",
        help="numba compiles for AVX2 without AVX-512 (benchmarks/machine.py)",
    )
    args = parser.parse_args()
    if args.avx2:
        rerun_for_avx2()
    return args


def describe():
    """One line: CPU model, cores, numba's target, Python, numpy and numba
    versions (and edt's where it is installed)."""
    import numba
    import numpy

    versions = [
        f"Python {platform.python_version()}",
        f"numpy {numpy.__version__}",
        f"numba {numba.__version__}",
    ]
    try:
        versions.append(f"edt {metadata.version('edt')}")
    except metadata.PackageNotFoundError:  # without the bench extra
        pass
    return (
        f"machine: {_cpu_model()}, {os.cpu_count()} logical CPUs ({sys.platform}); "
        f"numba compiles for {numba_target()}; " + ", ".join(versions)
    )


if __name__ == "__main__":
    print(describe())
