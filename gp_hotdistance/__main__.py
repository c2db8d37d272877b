"""The ``gp-hotdistance`` command (also ``python -m gp_hotdistance``).

Subcommands:

``precompute``
    Write the hot-distance target of a zarr gt dataset block by block with
    daisy (see :func:`gp_hotdistance.precompute.precompute_target`).

``worker``
    One worker of a precompute run whose ``--worker-command`` starts its
    workers; the run puts this command line into the template.

Both need the ``blockwise`` extra (daisy and tqdm).
"""

import argparse
import logging
import sys

PROGRAM = "gp-hotdistance"

# exit status for bad arguments (as argparse uses), and for a run that failed
# (blocks not written, or values in the gt or mask other than 0 and 1)
_USAGE_ERROR = 2
_RUN_ERROR = 1
_INTERRUPTED = 130  # as a shell reports SIGINT


def _classes(text):
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected class names separated by commas, e.g. mito,er; got {text!r}"
        )
    return names


def _groups(text):
    """``--groups``: JSON (``{"mito": [3, 4], "cell": "nonzero"}``) or
    ``name=id,id;name=id`` (``name=nonzero`` for every non-zero id)."""
    import json

    text = text.strip()
    if text.startswith("{"):

        def pairs_once(pairs):
            names = [name for name, _ in pairs]
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise argparse.ArgumentTypeError(
                    f"groups names the class {twice[0]!r} twice; give each class once, "
                    f"with all its ids"
                )
            return dict(pairs)

        try:
            groups = json.loads(text, object_pairs_hook=pairs_once)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"groups: bad JSON ({error}): {text!r}") from None
        if not isinstance(groups, dict):
            raise argparse.ArgumentTypeError(f"groups: expected a JSON object, got {text!r}")
        return groups
    groups = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, ids = part.partition("=")
        name, ids = name.strip(), ids.strip()
        if not sep or not name:
            raise argparse.ArgumentTypeError(
                f"expected groups as name=id,id;name=id (e.g. mito=3,4,5;er=16), got {text!r}"
            )
        if name in groups:
            raise argparse.ArgumentTypeError(
                f"groups names the class {name!r} twice; give each class once, "
                f"with all its ids (e.g. {name}=3,4)"
            )
        if ids == "nonzero":
            groups[name] = ids
            continue
        try:
            groups[name] = [int(i) for i in ids.split(",") if i.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"groups: the ids of {name!r} must be integers, got {ids!r}"
            ) from None
    return groups


def _ids(text):
    try:
        return [int(i) for i in text.split(",") if i.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integer label ids separated by commas, got {text!r}"
        ) from None


def _block_size(text):
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(
            f"expected positive voxel counts z,y,x (or one for all axes), got {text!r}"
        )
    return sizes[0] if len(sizes) == 1 else sizes


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _roi(text):
    offset, _, shape = text.partition(":")
    try:
        offset = tuple(int(part) for part in offset.split(","))
        shape = tuple(int(part) for part in shape.split(","))
    except ValueError:
        offset = shape = ()
    if not offset or len(offset) != len(shape):
        raise argparse.ArgumentTypeError(
            f"expected OFFSET:SHAPE in world units, z,y,x each, e.g. "
            f"0,0,0:400,512,512; got {text!r}"
        )
    return offset, shape


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Reports bad arguments in one line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(_USAGE_ERROR, f"{self.prog}: error: {message}\n")


def build_parser():
    """The argument parser of the ``gp-hotdistance`` command.

    Examples
    --------
    >>> args = build_parser().parse_args(
    ...     ["precompute", "--zarr", "d.zarr", "--gt", "gt", "--out", "target",
    ...      "--classes", "mito,er", "--scale-factor", "50", "--block-size", "32,64,64"])
    >>> args.classes, args.scale_factor, args.block_size, args.workers
    (['mito', 'er'], 50.0, (32, 64, 64), 1)
    """
    from . import __version__

    try:
        from .precompute import DEFAULT_BLOCK_SIZE, DEFAULT_CONNECT_TIMEOUT
    except ImportError:  # without the blockwise extra: the commands say so
        DEFAULT_BLOCK_SIZE, DEFAULT_CONNECT_TIMEOUT = 64, 60.0

    parser = _Parser(prog=PROGRAM, description="Hot-distance targets for gunpowder training.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    precompute = commands.add_parser(
        "precompute",
        help="write the target of a whole zarr volume, block by block with daisy",
        description=(
            "Write the hot-distance target of a binary gt dataset (one channel per "
            "class) as a new dataset in the same zarr container, with the gt's "
            "offset and voxel size, block by block on daisy workers. An "
            "interrupted run resumes when run again with the same arguments."
        ),
    )
    precompute.add_argument("--zarr", required=True, metavar="PATH", help="the zarr container")
    precompute.add_argument(
        "--gt",
        required=True,
        metavar="DS",
        help="binary gt dataset, (classes, z, y, x), or an "
        "integer label image (z, y, x) with --groups",
    )
    precompute.add_argument(
        "--mask", metavar="DS", help="binary mask dataset (1 known), for --mask-distances"
    )
    precompute.add_argument(
        "--out",
        required=True,
        metavar="DS",
        help="target dataset to write (float32, 2 * classes channels)",
    )
    precompute.add_argument(
        "--classes",
        required=True,
        type=_classes,
        metavar="A,B,...",
        help="class names, one per gt channel",
    )
    precompute.add_argument(
        "--groups",
        type=_groups,
        default=None,
        metavar="NAME=ID,ID;...",
        help="the gt is an integer label image: the label ids of "
        "each class, as name=id,id;name=id (name=nonzero "
        "for every non-zero id) or as JSON",
    )
    precompute.add_argument(
        "--unannotated",
        type=_ids,
        default=None,
        metavar="ID,ID",
        help="with --groups: label ids that mean not annotated (mask 0 for every class)",
    )
    precompute.add_argument(
        "--instances",
        type=_classes,
        default=None,
        metavar="A,B",
        help="with --groups: classes whose distances are measured "
        "between instances (different ids)",
    )
    precompute.add_argument(
        "--scale-factor",
        required=True,
        type=_positive_float,
        metavar="S",
        help="world distance where the target is tanh(1)",
    )
    precompute.add_argument(
        "--mask-distances",
        action="store_true",
        help="also write the distance mask to <out>_distance_mask",
    )
    precompute.add_argument(
        "--block-size",
        type=_block_size,
        default=None,
        metavar="Z,Y,X",
        help=f"write block in voxels (default {DEFAULT_BLOCK_SIZE} per axis)",
    )
    precompute.add_argument(
        "--workers", type=_positive_int, default=1, metavar="N", help="worker processes (default 1)"
    )
    precompute.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="T",
        help="threads per worker (default: cores / workers)",
    )

    precompute.add_argument(
        "--worker-command",
        metavar="TEMPLATE",
        help="start each worker with this shell command, "
        "{command} standing for the worker's command line, "
        "e.g. 'srun -n1 -c8 {command}' (default: local "
        "processes)",
    )
    precompute.add_argument(
        "--host",
        metavar="ADDRESS",
        help="address of this machine that the workers connect "
        "to (default: $DAISY_HOST, else daisy's guess)",
    )
    precompute.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long a worker tries to reach this machine (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    precompute.add_argument(
        "--roi",
        type=_roi,
        metavar="OFFSET:SHAPE",
        help="process only the blocks covering this world ROI, "
        "z,y,x:z,y,x (the output keeps the gt's extent)",
    )
    precompute.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs written by this package (anything else is refused)",
    )
    precompute.add_argument(
        "--log-dir", metavar="PATH", help="directory for daisy's worker logs (default: stderr)"
    )
    precompute.add_argument("--no-progress", action="store_true", help="no progress bar")
    precompute.add_argument("-v", "--verbose", action="store_true", help="log what is done")
    worker = commands.add_parser(
        "worker",
        help="one worker of a precompute run (started by --worker-command)",
        description="Connect to a precompute run's scheduler and write the blocks "
        "it hands out. The run builds this command line.",
    )
    worker.add_argument("--zarr", required=True, metavar="PATH")
    worker.add_argument("--out", required=True, metavar="DS")
    worker.add_argument("--scheduler", required=True, metavar="HOST:PORT")
    worker.add_argument("--task-id", required=True)
    worker.add_argument("--worker-id", type=int, required=True)
    worker.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
    )
    worker.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="numba threads (default: the cores this process may use)",
    )
    return parser


def _precompute(args):
    from .precompute import precompute_target
    from .predictor import HotDistancePredictor

    predictor = HotDistancePredictor(
        args.classes,
        scale_factor=args.scale_factor,
        mask_distances=args.mask_distances,
        groups=args.groups,
        unannotated=args.unannotated,
        instances=args.instances,
    )

    def show(plan):
        print(plan.describe(), flush=True)

    result = precompute_target(
        args.zarr,
        args.gt,
        args.out,
        predictor,
        mask=args.mask,
        block_size=args.block_size,
        num_workers=args.workers,
        threads=args.threads,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        log_dir=args.log_dir,
        roi=args.roi,
        worker_command=args.worker_command,
        host=args.host,
        connect_timeout=args.connect_timeout,
        on_plan=show,
    )
    written = result.target
    if result.distance_mask is not None:
        written += f" and {result.distance_mask}"
    print(
        f"wrote {written}: {_count(result.total_blocks, 'block')}, "
        f"{result.processed_blocks} processed, {result.skipped_blocks} already done"
    )
    if result.skipped_blocks:
        # a resumed run keeps what an earlier run wrote, even if the gt or the
        # mask changed since: say so, rather than let a stale target pass
        print(
            f"the {_count(result.skipped_blocks, 'block')} done by an earlier run "
            f"{'was kept as it is' if result.skipped_blocks == 1 else 'were kept as they are'}; if the gt or the mask changed since, run again with "
            f"--overwrite to recompute them"
        )


def _count(number, noun):
    """``number`` and ``noun``, plural unless the number is 1."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _worker(args):
    from .precompute import _worker as worker

    try:
        worker.run_worker(
            args.zarr,
            args.out,
            args.scheduler,
            args.task_id,
            args.worker_id,
            args.connect_timeout,
            args.threads,
        )
    except worker.SchedulerUnreachableError as error:
        print(f"{PROGRAM} worker: error: {error}", file=sys.stderr)
        return worker.EXIT_UNREACHABLE
    except worker.RunNotFoundError as error:
        print(f"{PROGRAM} worker: error: {error}", file=sys.stderr)
        return worker.EXIT_NO_RUN
    except ValueError as error:
        print(f"{PROGRAM} worker: error: {error}", file=sys.stderr)
        return _USAGE_ERROR
    return 0


def main(argv=None):
    """Run the command with ``argv`` (``sys.argv[1:]`` by default); the exit
    status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        from .precompute import InvalidDataError
    except ImportError as error:  # the blockwise extra is missing
        print(f"{PROGRAM} {args.command}: error: {error}", file=sys.stderr)
        return _USAGE_ERROR
    if args.command == "worker":
        return _worker(args)

    try:
        _precompute(args)
    except InvalidDataError as error:  # bad values in the data: the run failed
        print(f"{PROGRAM} {args.command}: failed: {error}", file=sys.stderr)
        return _RUN_ERROR
    except (FileNotFoundError, FileExistsError, ValueError, TypeError) as error:
        print(f"{PROGRAM} {args.command}: error: {error}", file=sys.stderr)
        return _USAGE_ERROR
    except RuntimeError as error:
        print(f"{PROGRAM} {args.command}: failed: {error}", file=sys.stderr)
        return _RUN_ERROR
    except KeyboardInterrupt:
        print(
            f"{PROGRAM} {args.command}: interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return _INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
