"""The library logs through its module loggers only and never prints.

The source itself is checked by ruff (rules T20 and LOG, configured in
pyproject.toml and run by .ci/run); this test checks what the calls do.
"""

import logging

import numpy as np
import pytest

import gp_hotdistance as hd
from gp_hotdistance import HotDistancePredictor


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
    hd.unknown_distance(mask, (40, 4, 4))
    hd.face_distance(gt[0], (40, 4, 4), outside=0)
    try:
        import torch
    except ImportError:  # the torch extra is optional; the rest still runs
        torch = None
    if torch is not None:
        net = type("Net", (torch.nn.Module,), {"dims": 3, "num_out_channels": 4})()
        predictor.create_model(net)
    with pytest.raises(ValueError):
        predictor.process(gt * 2, (40, 4, 4), "tanh")

    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert [record.name for record in caplog.records if record.name == "root"] == []
