"""The brownface command: help, generate, inspect and one-line errors."""

import hashlib
import subprocess
import sys

import numpy as np
from PIL import Image

from brownface.cli import main
from brownface.store import IdentityStore


def test_help_lists_the_commands(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for command in ("inspect", "generate", "world-sheet"):
        assert command in out


def test_generate_renders_one_face_deterministically(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    assert main(["generate", "--seed", "7", "--out", str(a)]) == 0
    assert main(["generate", "--seed", "7", "--out", str(b)]) == 0
    assert main(["generate", "--seed", "8", "--out", str(c)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    image = np.asarray(Image.open(a))
    assert image.shape == (64, 64, 3) and image.std() > 10


def test_inspect_summarises_a_store(tmp_path, capsys):
    path = tmp_path / "identities.h5"
    IdentityStore(
        identity=np.arange(3),
        w=np.zeros((3, 32), np.float32),
        embedding=np.ones((3, 8), np.float32),
        provenance={"seed": 5},
    ).write(path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "identities" in out and "32" in out and "seed" in out


def test_errors_are_one_line_and_exit_1(tmp_path):
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"not hdf5 at all")
    result = subprocess.run(
        [sys.executable, "-m", "brownface.cli", "inspect", str(bogus)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "bogus.h5" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_is_reported_by_generate(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("world:\n  resolution: 3\n")
    assert (
        main(["generate", "--config", str(cfg), "--seed", "1", "--out", str(tmp_path / "x.png")])
        == 1
    )
    err = capsys.readouterr().err
    assert "world.resolution" in err and ">= 16" in err


def test_world_sheet(tmp_path):
    out = tmp_path / "sheet.png"
    assert main(["world-sheet", "--identities", "2", "--size", "32", "--out", str(out)]) == 0
    image = Image.open(out)
    assert image.size[1] == 14 + 2 * 32
    assert hashlib.sha256(out.read_bytes()).hexdigest()


def test_inspect_a_directory_says_so(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a directory; expected a store file" in err


def test_inspect_digests_ignore_provenance(tmp_path, capsys):
    for name, seed in (("a.h5", 1), ("b.h5", 2)):
        IdentityStore(
            identity=np.arange(3),
            w=np.zeros((3, 4), np.float32),
            embedding=np.ones((3, 2), np.float32),
            provenance={"seed": seed},
        ).write(tmp_path / name)
    assert main(["inspect", "--digests", str(tmp_path / "a.h5"), str(tmp_path / "b.h5")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[0].endswith("a.h5:embedding")
    assert [line.split()[0] for line in lines[:3]] == [line.split()[0] for line in lines[3:]]


def test_check_config_validates_like_the_workflow(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("seed: 2\n")
    bad.write_text("world:\n  multipie: [1, 2\n")
    assert main(["check-config", str(good)]) == 0
    assert "good.yaml: valid" in capsys.readouterr().out
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml: line 3 column 1: not valid YAML" in err
