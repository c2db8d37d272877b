"""The README's promises a newcomer tries first: its pipeline runs when pasted
into a file, its first commands name files that exist, and it stays short and
free of commit hashes."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def test_the_readme_pipeline_runs_as_pasted(tmp_path):
    # the first python block, in a file of its own, run from a scratch folder
    # by the interpreter under test (the installed package, as a user has it)
    script = tmp_path / "pipeline.py"
    script.write_text(code_blocks("python")[0])
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the shapes its last line's comment promises: 2 classes -> 4 channels of 32^3
    assert done.stdout.strip().splitlines()[-1] == "(4, 32, 32, 32) (4, 32, 32, 32)"


def test_the_readme_loss_lines_run(tmp_path):
    pytest.importorskip("torch", reason="the loss needs the torch extra")
    loss = code_blocks("python")[1]
    done = subprocess.run(
        [sys.executable, "-c", loss + "\nprint(type(loss).__name__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "HotDistanceLoss"


def test_the_first_commands_name_files_that_exist():
    first = code_blocks("bash")[0]
    scripts = re.findall(r"python (examples/\S+\.py)", first)
    assert scripts == ["examples/train.py", "examples/predict.py"]
    for script in scripts:
        assert (ROOT / script).is_file(), script
    assert "python -m pytest" in first


def test_the_readme_is_short_and_names_no_commit():
    text = README.read_text()
    assert len(text.splitlines()) <= 120
    assert re.findall(r"`[0-9a-f]{7,40}`", text) == []


#: CPU models: a user's page says what was measured, not on which machine of ours
CPU_MODELS = re.compile(r"EPYC|Xeon|Ryzen|Threadripper|Core i[3579]|family \d+ model")


def test_user_docs_name_no_commit_and_no_cpu_model():
    # the developer notes (docs/dev/) may name commits and machines; the
    # user's pages (and the README) do not
    pages = [
        p for p in (ROOT / "docs").rglob("*.md") if "dev" not in p.relative_to(ROOT / "docs").parts
    ]
    assert pages, "no documentation pages found"
    found = {
        str(p.relative_to(ROOT)): re.findall(r"`[0-9a-f]{7,40}`", p.read_text()) for p in pages
    }
    assert {page: hashes for page, hashes in found.items() if hashes} == {}
    models = {str(p.relative_to(ROOT)): CPU_MODELS.findall(p.read_text()) for p in [*pages, README]}
    assert {page: names for page, names in models.items() if names} == {}
