"""Command lines the tests run (imported as a plain module, like the
oracles)."""


def precompute_command(container, gt, out, classes, scale_factor, *extra):
    """``gp-hotdistance precompute`` arguments without a progress bar: the
    five every run needs, then ``extra`` (later options win)."""
    return [
        "precompute",
        "--zarr",
        container,
        "--gt",
        gt,
        "--out",
        out,
        "--classes",
        classes,
        "--scale-factor",
        str(scale_factor),
        "--no-progress",
        *extra,
    ]
