"""The Snakemake workflow end to end on a tiny world (slow), and its config errors."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"

TINY = """
world:
  multipie: {subjects: 2, image_size: 64, cameras: ["11_0", "05_1", "24_0"], flashes: [0, 7]}
  benchmarks: {lfw_pairs_per_fold: 2, cfp_fp_people_per_fold: 2, ijbc_subjects: 3, image_size: 64, ijbc_image_size: 64}
"""


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def write_config(workdir: Path, text: str) -> None:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(text)


@pytest.mark.slow
def test_world_target_builds_everything_then_nothing_to_do(tmp_path):
    write_config(tmp_path, TINY)
    run = snakemake(tmp_path, "world")
    assert run.returncode == 0, run.stderr[-3000:]
    world = tmp_path / "results" / "world"
    for rel in (
        "multipie_landmarks.csv",
        "benchmarks/lfw.bin",
        "benchmarks/cfp_fp.bin",
        "benchmarks/pairs.txt",
        "benchmarks/ijbc/meta/ijbc_face_tid_mid.txt",
        "sheet.png",
    ):
        assert (world / rel).is_file(), rel
    assert list((world / "multipie").rglob("*.png"))
    assert (tmp_path / "results" / "logs" / "world" / "build_world_lfw.log").read_text()
    again = snakemake(tmp_path, "world")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_bad_config_stops_with_one_line(tmp_path):
    write_config(tmp_path, "world:\n  multipie:\n    subjects: 0\n")
    run = snakemake(tmp_path, "-n", "world")
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if "brownface: error" in line]
    assert lines == [
        "brownface: error: config: world.multipie.subjects: expected a value >= 1, got 0"
    ]
    assert "Traceback" not in run.stderr
