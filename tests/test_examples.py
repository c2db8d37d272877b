"""Smoke tests of the example scripts: they run as a user runs them (a
subprocess in a scratch folder), with tiny sizes, and leave well-formed
outputs; bad input ends them with one line of error."""

import os
import subprocess
import sys

import numpy as np
import pytest
from funlib.persistence import open_ds, prepare_ds

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
TINY = ["--shape", "32,48,48", "--output-shape", "8", "--workers", "1"]


def run_example(script, *args, cwd):
    return subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run of train.py, then predict.py on it."""
    pytest.importorskip("torch", reason="the training examples need the torch extra")
    folder = tmp_path_factory.mktemp("examples")
    train = run_example(
        "train.py", "--out", "run", "--iterations", "3", "--snapshot-every", "2", *TINY, cwd=folder
    )
    assert train.returncode == 0, train.stderr
    predict = run_example("predict.py", "run", cwd=folder)
    assert predict.returncode == 0, predict.stderr
    return folder / "run", train.stdout, predict.stdout


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_train_writes_data_checkpoint_snapshots_and_figures(trained):
    run, stdout, _ = trained
    raw = open_ds(str(run / "data.zarr" / "raw"))
    gt = open_ds(str(run / "data.zarr" / "gt"))
    mask = open_ds(str(run / "data.zarr" / "mask"))
    assert raw.shape == (32, 48, 48)
    assert gt.shape == mask.shape == (3, 32, 48, 48)
    assert tuple(raw.voxel_size) == tuple(gt.voxel_size) == (8, 8, 8)
    assert set(np.unique(gt[gt.roi])) <= {0, 1}
    assert (run / "model_checkpoint_3").is_file()
    assert sorted(os.listdir(run / "snapshots")) == ["batch_1.zarr", "batch_3.zarr"]
    for figure in ("train.png", "loss.png"):
        assert is_png(run / figure)
    assert len((run / "loss.csv").read_text().splitlines()) == 3
    assert "checkpoint: run/model_checkpoint_3" in stdout


def test_checkpoint_holds_the_moving_class_counts(trained):
    torch = pytest.importorskip("torch", reason="needs the torch extra")

    run, _, _ = trained
    checkpoint = torch.load(run / "model_checkpoint_3", weights_only=True)
    counts = np.array(checkpoint["balance"]["moving_class_counts"])
    assert checkpoint["balance"]["channels"] == ["mito", "er", "vesicle"]
    assert counts.shape == (6, 2)
    # three batches of 8^3 voxels, all known or some masked out, and those the
    # PreCache worker made ahead (its cache holds 4)
    assert 0 < counts[:3].sum(axis=1).max() <= (3 + 4 + 1) * 8**3
    # no gp.ElasticAugment by default, so no noise to give back
    assert checkpoint["config"]["elastic"] is False
    assert checkpoint["config"]["noise_var"] == 0.0


def test_train_with_elastic_augmentation(tmp_path):
    torch = pytest.importorskip("torch", reason="the training examples need the torch extra")
    result = run_example(
        "train.py",
        "--out",
        "run",
        "--iterations",
        "2",
        "--elastic",
        "--snapshot-every",
        "2",
        *TINY,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    config = torch.load(tmp_path / "run" / "model_checkpoint_2", weights_only=True)["config"]
    # the noise gp.NoiseAugment gives back: what linear interpolation at a
    # random offset takes from white noise of std 0.06, 1 - (2/3)^3 of 0.0036
    assert config["elastic"] is True
    assert config["noise_var"] == pytest.approx(0.0025333, abs=1e-5)


def test_predict_writes_prediction_segmentation_instances_and_figure(trained):
    run, _, stdout = trained
    raw = open_ds(str(run / "data.zarr" / "raw"))
    prediction = open_ds(str(run / "prediction.zarr" / "prediction"))
    segmentation = open_ds(str(run / "prediction.zarr" / "segmentation"))
    instances = open_ds(str(run / "prediction.zarr" / "instances"))
    assert prediction.shape == (6, 32, 48, 48)
    assert segmentation.shape == instances.shape == (3, 32, 48, 48)
    assert prediction.dtype == np.float32 and segmentation.dtype == np.uint8
    assert instances.dtype == np.uint64
    for array in (prediction, segmentation, instances):
        assert array.voxel_size == raw.voxel_size
        assert array.roi == raw.roi
    values = prediction[prediction.roi]
    hot, distance = values[:3], values[3:]
    assert hot.min() >= 0 and hot.max() <= 1  # clipped to the target's range
    assert distance.min() >= -1 and distance.max() <= 1
    np.testing.assert_array_equal(segmentation[segmentation.roi], values[3:] > 0)
    # instances cover the segmentation exactly
    np.testing.assert_array_equal(instances[instances.roi] > 0, values[3:] > 0)
    assert is_png(run / "predict.png")
    assert "scores of the segmentation (distance > 0)" in stdout
    assert "mean IoU:" in stdout and "mean instance F1:" in stdout
    for name in ("mito", "er", "vesicle"):
        assert f"  {name} " in stdout or f" {name} " in stdout


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_paths_and_datasets_get_one_line(tmp_path):
    pytest.importorskip("torch", reason="the training examples need the torch extra")
    line = one_error_line(
        run_example(
            "train.py",
            "--zarr",
            "missing.zarr",
            "--raw",
            "raw",
            "--gt",
            "gt",
            "--classes",
            "a",
            cwd=tmp_path,
        )
    )
    assert line.startswith("error: --zarr ") and "missing.zarr: no such directory" in line

    raw = prepare_ds(
        str(tmp_path / "data.zarr" / "raw"),
        (16, 16, 16),
        dtype=np.uint8,
        voxel_size=(8, 8, 8),
        axis_names=["z", "y", "x"],
    )
    raw[raw.roi] = 0
    line = one_error_line(
        run_example(
            "train.py",
            "--zarr",
            "data.zarr",
            "--raw",
            "raw",
            "--gt",
            "labels",
            "--classes",
            "a",
            cwd=tmp_path,
        )
    )
    assert "--gt 'labels'" in line and "no dataset" in line

    line = one_error_line(run_example("predict.py", "no_such_run", cwd=tmp_path))
    assert "no_such_run" in line


def test_float_raw_outside_zero_one_gets_one_line(tmp_path):
    pytest.importorskip("torch", reason="the training examples need the torch extra")
    data = tmp_path / "data.zarr"
    raw = prepare_ds(
        str(data / "raw"),
        (32, 32, 32),
        dtype=np.float32,
        voxel_size=(8, 8, 8),
        axis_names=["z", "y", "x"],
    )
    raw[raw.roi] = np.full((32, 32, 32), 200.0, dtype=np.float32)
    gt = prepare_ds(
        str(data / "gt"),
        (1, 32, 32, 32),
        dtype=np.uint8,
        voxel_size=(8, 8, 8),
        axis_names=["c^", "z", "y", "x"],
        types=["channel", "space", "space", "space"],
    )
    gt[gt.roi] = 0
    line = one_error_line(
        run_example(
            "train.py",
            "--zarr",
            "data.zarr",
            "--raw",
            "raw",
            "--gt",
            "gt",
            "--classes",
            "a",
            *TINY,
            cwd=tmp_path,
        )
    )
    assert "--raw is float32 but not in [0, 1] (found 200 to 200" in line


@pytest.mark.parametrize("script", ["train.py", "predict.py"])
def test_help_pages_print(script, tmp_path):
    pytest.importorskip("torch", reason="the training examples need the torch extra")
    result = run_example(script, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--elastic", "--noise-var", "-0.1"], "--noise-var must lie in [0, 1), got -0.1"),
        (["--noise-var", "0.001"], "--noise-var needs --elastic"),
        (
            ["--resume", "--out", "run", "--lr", "0.1", "--elastic", "--iterations", "9"],
            "--resume continues with the run's saved settings; drop --elastic, --lr",
        ),
    ],
)
def test_bad_training_options_are_refused(args, message, tmp_path):
    pytest.importorskip("torch", reason="the training examples need the torch extra")
    result = run_example("train.py", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert not os.listdir(tmp_path)


def test_classes_that_do_not_match_the_gt_get_one_line(trained, tmp_path):
    run, _, _ = trained
    data = str(run / "data.zarr")
    line = one_error_line(
        run_example(
            "train.py",
            "--zarr",
            data,
            "--raw",
            "raw",
            "--gt",
            "gt",
            "--mask",
            "mask",
            "--classes",
            "mito,er",
            *TINY,
            cwd=tmp_path,
        )
    )
    assert "--gt 'gt' must have 2 channels" in line


def test_pipeline_example_trains_a_few_iterations(tmp_path):
    pytest.importorskip("torch", reason="the training examples need the torch extra")
    env = dict(os.environ, GP_HOTDISTANCE_ITERATIONS="2")
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "pipeline.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "iteration 2: loss" in result.stdout
    (run,) = [p for p in tmp_path.iterdir() if p.name.startswith("hotdistance_pipeline_")]
    assert (run / "model_checkpoint_2").is_file() and (run / "data.zarr" / "gt").is_dir()


def test_minimal_example_runs(tmp_path):
    result = run_example("minimal.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "target (2, 32, 64, 64) float32" in result.stdout


def test_predict_never_writes_over_what_it_did_not_write(trained, tmp_path):
    run, _, _ = trained
    # a dataset of the user's at an output's name: refused, with or without --overwrite
    theirs = prepare_ds(
        str(tmp_path / "theirs.zarr" / "segmentation"),
        (4, 4, 4),
        dtype=np.uint8,
        voxel_size=(8, 8, 8),
        axis_names=["z", "y", "x"],
    )
    theirs[theirs.roi] = 7
    for extra in ([], ["--overwrite"]):
        line = one_error_line(
            run_example("predict.py", str(run), "--out", "theirs.zarr", *extra, cwd=tmp_path)
        )
        assert "'segmentation' exists" in line
    assert (open_ds(str(tmp_path / "theirs.zarr" / "segmentation"))[:] == 7).all()

    # its own results: refused without --overwrite, replaced with it
    assert run_example("predict.py", str(run), "--out", "ours.zarr", cwd=tmp_path).returncode == 0
    line = one_error_line(run_example("predict.py", str(run), "--out", "ours.zarr", cwd=tmp_path))
    assert "--overwrite" in line
    again = run_example("predict.py", str(run), "--out", "ours.zarr", "--overwrite", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_the_noise_default_is_for_the_synthetic_volume_only():
    pytest.importorskip("torch", reason="the training examples need the torch extra")
    sys.path.insert(0, EXAMPLES)
    try:
        import train
    finally:
        sys.path.remove(EXAMPLES)
    assert train.parse_args([]).noise_var == 0.0  # no ElasticAugment, no noise
    assert train.parse_args(["--elastic"]).noise_var == pytest.approx(0.0025333, abs=1e-5)
    user_data = ["--zarr", "d.zarr", "--raw", "r", "--gt", "g", "--classes", "a"]
    assert train.parse_args([*user_data, "--elastic"]).noise_var == 0.0
    assert train.parse_args([*user_data, "--elastic", "--noise-var", "0.01"]).noise_var == 0.01


def test_label_groups_example_runs(tmp_path):
    result = run_example("label_groups.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mito one-hot equals the binary mito channel: True" in result.stdout
    assert "weight in the unannotated box: 0.0" in result.stdout
