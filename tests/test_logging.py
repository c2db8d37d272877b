"""The library logs through its module loggers only and never prints."""

import ast
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import gp_hotdistance
from gp_hotdistance import HotDistancePredictor, core

PACKAGE = Path(gp_hotdistance.__file__).resolve().parent
# __main__.py is the command-line program, not the library: printing its
# results and configuring logging there is its job
SOURCES = sorted(path for path in PACKAGE.rglob("*.py") if path.name != "__main__.py")
ROOT_LOGGER_CALLS = {
    "debug", "info", "warning", "warn", "error", "exception", "critical", "log", "basicConfig",
}


def forbidden_calls(tree):
    """``(line, text)`` of every ``print``, ``sys.stdout``/``sys.stderr``
    write, call of a ``logging`` module function that goes to the root
    logger, and ``logging.getLogger()`` without a name."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        text = ast.unparse(func)
        if isinstance(func, ast.Name) and func.id == "print":
            found.append((node.lineno, text))
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            module, name = func.value.id, func.attr
            if module == "logging" and name in ROOT_LOGGER_CALLS:
                found.append((node.lineno, text))
            if module == "logging" and name == "getLogger" and not node.args:
                found.append((node.lineno, text + "()"))
        if text in ("sys.stdout.write", "sys.stderr.write"):
            found.append((node.lineno, text))
    return found


def test_the_source_is_scanned():
    assert {"core.py", "predictor.py", "__init__.py"} <= {path.name for path in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_print_and_no_root_logger_in_source(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    assert forbidden_calls(tree) == []
    # a module that logs uses a logger named after itself
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "logging.getLogger":
            assert [ast.unparse(arg) for arg in node.args] == ["__name__"]


def test_the_scanner_finds_what_it_looks_for():
    source = "print(1)\nlogging.info('x')\nlogging.getLogger()\nsys.stderr.write('x')\n"
    assert [line for line, _ in forbidden_calls(ast.parse(source))] == [1, 2, 3, 4]


def test_calls_write_nothing_to_stdout_or_the_root_logger(capsys, caplog):
    caplog.set_level(logging.DEBUG)
    rng = np.random.default_rng(0)
    gt = (rng.random((2, 6, 7, 8)) < 0.3).astype(np.uint8)
    mask = (rng.random((6, 7, 8)) < 0.9).astype(np.uint8)
    predictor = HotDistancePredictor(["a", "b"], 10.0, mask_distances=True)
    target = predictor.process(gt, (40, 4, 4), "tanh")
    predictor.process_weight(gt, target, mask, (40, 4, 4))
    predictor.create_distance_mask(target[2:], mask, (40, 4, 4))
    predictor.padding((40, 4, 4))
    core.unknown_distance(mask, (40, 4, 4))
    core.face_distance(gt[0], (40, 4, 4), outside=0)
    net = type("Net", (torch.nn.Module,), {"dims": 3, "num_out_channels": 4})()
    predictor.create_model(net)
    with pytest.raises(ValueError):
        predictor.process(gt * 2, (40, 4, 4), "tanh")

    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert [record.name for record in caplog.records if record.name == "root"] == []
