"""The Snakemake workflow end to end on a tiny world (slow), and its config errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

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


FULL = """
world:
  multipie: {subjects: 2, image_size: 64, cameras: ["11_0", "14_0", "05_1", "05_0", "24_0"], flashes: [0, 1, 7, 11]}
  benchmarks: {lfw_pairs_per_fold: 2, cfp_fp_people_per_fold: 2, ijbc_subjects: 3, image_size: 64, ijbc_image_size: 64}
  reference_fr:
    identities: 16
    images_per_identity: 4
    recipe: {epochs: 1, milestones: [1], batch_size: 16}
covariates:
  projection: {steps: 5, batch_size: 16}
identities:
  lang: {algorithm: langevin, n: 8, iterations: 2, checkpoint_every: 1}
variations:
  disco: {algorithm: disco, variations: 2, iterations: 1, sigma: 0.1, r_w: 3.0}
datasets:
  tiny: {identities: lang, variations: disco, shards: 2}
training:
  recipe: {arch: iresnet, layers: [1, 1, 1, 1], widths: [4, 8, 8, 16], input_size: 16,
           embedding_size: 16, batch_size: 8, epochs: 1, milestones: [1], workers: 0}
"""


#: FULL with the world generator's training faces as a real face collection (leakage).
FULL_LEAKAGE = (
    FULL
    + "real_faces:\n  world_training: {source: generator_frames, path: null}\n"
    + "leakage: {variations: true}\n"
)


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def plan(workdir: Path, *args: str) -> dict[str, int]:
    """The jobs a dry run schedules, rule -> count (Snakemake's "Job stats" table)."""
    run = snakemake(workdir, "-n", *args)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    if "Nothing to be done" in out:
        return {}
    lines = out[out.index("Job stats:") :].splitlines()[3:]
    jobs = {}
    for line in lines:
        rule, count = line.split()
        if rule == "total":
            return jobs
        jobs[rule] = int(count)
    raise AssertionError(out[-3000:])


@pytest.mark.slow
def test_the_whole_pipeline_on_a_tiny_world(tmp_path):
    write_config(tmp_path, FULL_LEAKAGE)
    results = tmp_path / "results"
    # Without the onsuccess hook the jobs' checkpoints stay, as after an interrupted run.
    run = snakemake(tmp_path, "--no-hooks")
    assert run.returncode == 0, run.stderr[-4000:]
    table = (results / "report" / "table.md").read_text()
    header = table.splitlines()[0]
    for column in (
        "lfw", "cfp_fp", "mean", "IJB-C TAR@1e-4", "IJB-C TAR@1e-5", "leaked@1e-4 world_training"
    ):  # fmt: skip
        assert column in header, header
    assert "tiny (8 x 3)" in table and "real data (world identities)" in table
    ijbc = json.loads((results / "evaluation" / "tiny" / "ijbc.json").read_text())
    assert ijbc["protocol"] == "ijb 1:1 and 1:N" and set(ijbc["tar_at_far"]) == {
        "1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1"
    }  # fmt: skip
    assert ijbc["identification"]["n_gallery"] == 3  # one gallery template per subject
    for rel in (
        "roc_ijbc.png", "angles.png", "sampling_stats.png", "training_curves.png", "leakage.png"
    ):  # fmt: skip
        assert (results / "report" / rel).stat().st_size > 10_000, rel
    # Leakage against the world's training faces, with the world's ground truth beside it.
    leakage = json.loads((results / "leakage" / "world_training" / "tiny.json").read_text())
    assert leakage["synthetic"] == 8 and leakage["real"] == 100  # 50 people x 2 frames
    assert set(leakage["truth"]["agreement"]) == {"0.001", "0.0001"}
    assert 0 <= leakage["truth"]["leaked"] <= 1
    assert leakage["variations"]["synthetic"] == 8 * 3  # each identity's 1 + 2 variations
    assert (results / "leakage" / "world_training" / "tiny_pairs.png").stat().st_size > 10_000
    html = snakemake(tmp_path, "--report", "results/report.html")
    assert html.returncode == 0, html.stderr[-3000:]
    assert (results / "report.html").stat().st_size > 100_000
    for rel in (
        "covariates/covariates.h5",
        "datasets/tiny/variations.h5",
        "training/tiny/model.pt",
        "datasets/tiny/rendered/index.csv",
        "datasets/tiny/contact_sheet.png",
    ):
        assert (results / rel).is_file(), rel
    card = json.loads((results / "datasets" / "tiny" / "card.json").read_text())
    assert card["counts"] == {"identities": 8, "images_per_identity": 3, "images": 24}
    assert card["reference_fr"]["checkpoint_sha256"] and card["render"]["format"] == "png"
    # The render shards (temp) are gone once merged; the rerun below makes them again.
    assert not list((results / "datasets" / "tiny").glob("render/shard*"))
    quality = pd.read_csv(results / "covariates" / "projection_quality.csv")
    assert quality.columns[0] == "factor" and quality.iloc[0].factor == "all"
    assert quality.iloc[0].psnr_median > 20  # pixel MSE only: the PSNR is reported
    kept = [p.relative_to(results).as_posix() for p in files(results / "checkpoints")]
    assert "checkpoints/training/tiny/model.pt" in kept
    assert "checkpoints/datasets/tiny/variations/shard001.h5" in kept

    # Partial reruns, from the dry-run plan: a stage forced, one parameter changed, --until.
    downstream_of_training = {
        "train_fr": 1, "evaluate_verification": 2, "ijb_features": 1, "ijb_score": 1,
        "report_table": 1, "report_figures": 1, "all": 1,
    }  # fmt: skip
    downstream_of_variations = {
        "sample_variations": 2, "merge_variations": 1, "render_dataset": 2,
        "merge_render_shards": 1, "write_dataset_card": 1, "plot_contact_sheet": 1,
        "measure_leakage": 1, "report_leakage": 1,  # leakage.variations measures each image
        **downstream_of_training,
    }  # fmt: skip
    assert plan(tmp_path) == {}
    assert plan(tmp_path, "--forcerun", "sample_variations") == downstream_of_variations
    config = tmp_path / "config"
    (config / "sigma.yaml").write_text("variations: {disco: {sigma: 0.3}}\n")
    assert plan(tmp_path, "--configfile", str(config / "sigma.yaml")) == downstream_of_variations
    (config / "epochs.yaml").write_text("training: {recipe: {epochs: 2, milestones: [1]}}\n")
    assert plan(tmp_path, "--configfile", str(config / "epochs.yaml")) == downstream_of_training
    until = plan(tmp_path, "--forcerun", "sample_variations", "--until", "merge_variations")
    assert until == {"sample_variations": 2, "merge_variations": 1}

    # A partial rerun after changing one variations parameter: the variations, the images,
    # the model and its evaluation all change (a kept final checkpoint of the old images is
    # not resumed), and nothing upstream of the variations reruns.
    model = (results / "training" / "tiny" / "model.pt").read_bytes()
    evaluation = json.loads((results / "evaluation" / "tiny" / "lfw.json").read_text())
    identities = (results / "identities" / "lang" / "identities.h5").stat().st_mtime
    target = "results/evaluation/tiny/lfw.json"
    rerun = snakemake(tmp_path, target, "--configfile", str(tmp_path / "config" / "sigma.yaml"))
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "train_fr" in rerun.stdout + rerun.stderr
    assert (results / "training" / "tiny" / "model.pt").read_bytes() != model
    again = json.loads((results / "evaluation" / "tiny" / "lfw.json").read_text())
    assert again["model_sha256"] != evaluation["model_sha256"]
    assert again["training_data"]["fingerprint"] != evaluation["training_data"]["fingerprint"]
    assert (results / "identities" / "lang" / "identities.h5").stat().st_mtime == identities
    # That run succeeded with its hook: the checkpoints of accepted outputs are gone.
    assert not files(results / "checkpoints" / "training")
    assert not files(results / "checkpoints" / "datasets")

    # The deleted temp render shards rerun nothing by themselves; a render setting reruns
    # them and the merge, and nothing upstream.
    sigma = str(tmp_path / "config" / "sigma.yaml")
    rendered = "results/datasets/tiny/rendered"
    same = snakemake(tmp_path, "-n", rendered, "--configfile", sigma)
    assert same.returncode == 0 and "Nothing to be done" in same.stdout + same.stderr
    jpeg_config = tmp_path / "config" / "jpeg.yaml"
    jpeg_config.write_text("render: {format: jpeg, jpeg_quality: 90}\n")
    jpeg = snakemake(tmp_path, "-n", rendered, "--configfile", sigma, str(jpeg_config))
    out = jpeg.stdout + jpeg.stderr
    assert jpeg.returncode == 0 and "merge_render_shards" in out, out[-3000:]
    assert "render_dataset" in out and "sample_variations" not in out


def test_every_default_path_follows_results(tmp_path):
    """With results: elsewhere, every input of the DAG is made by a rule (dry run)."""
    write_config(tmp_path, FULL + "results: elsewhere\n")
    run = snakemake(tmp_path, "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert "elsewhere/world/reference_fr/model.pt" in out
    assert "elsewhere/covariates/covariates.h5" in out
    assert "results/" not in out


def test_a_yaml_syntax_error_names_the_file_and_position(tmp_path):
    write_config(tmp_path, "world:\n  multipie: {subjects: 2\nseed: 1\n")
    run = snakemake(tmp_path, "-n")
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if "brownface: error" in line]
    assert len(lines) == 1 and "config/config.yaml: line 3 column 5: not valid YAML" in lines[0]
    assert "Traceback" not in run.stderr


PAPER_DIRS = ("data/multipie", "data/IJB_release/IJBB", "data/IJB_release/IJBC")
PAPER_FILES = (
    "data/stylegan2-ffhq-256x256.pkl",
    "data/backbone.pth",
    "data/adaface_ir50_casia.ckpt",
    "data/lfw.bin",
    "data/cfp_fp.bin",
    "data/agedb_30.bin",
    "data/calfw.bin",
    "data/cplfw.bin",
)


def test_the_paper_config_builds_the_full_dag_without_the_world(tmp_path):
    """config/paper.yaml with placeholder files: every stage of the paper, and no world rule
    (real files never silently fall back to the procedural world)."""
    write_config(tmp_path, "seed: 0\n")
    for rel in PAPER_DIRS:
        (tmp_path / rel).mkdir(parents=True)
    for rel in PAPER_FILES:
        (tmp_path / rel).touch()
    paper_config = str(REPO / "config" / "paper.yaml")
    # --cores 64: a dry run scales each job's threads down to the cores it is given.
    run = snakemake(tmp_path, "-n", "--cores", "64", "--configfile", paper_config)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    counts = {
        "detect_landmarks": 8,
        "merge_landmarks": 1,
        "project_multipie": 8,
        "fit_covariates": 1,
        "sample_identities": 2,
        "sample_variations": 24,
        # Rendering is sharded like the variations (8 shards x 3 datasets), then merged; each
        # dataset also gets a card and a contact sheet (rule datasets, part of all).
        "render_dataset": 24,
        "merge_render_shards": 3,
        "write_dataset_card": 3,
        "plot_contact_sheet": 3,
        "train_fr": 3,
        # Three datasets' models and the real-data row (real_models.casia-webface), 5 sets.
        "evaluate_verification": 20,
        # IJB-B and IJB-C: 8 feature shards per model and set, then one scoring job each.
        "ijb_features": 64,
        "ijb_score": 8,
        "report_table": 1,
        "report_figures": 1,
    }
    for rule, count in counts.items():
        line = next(line for line in out.splitlines() if line.split()[:1] == [rule])
        assert int(line.split()[1]) == count, line
    assert "build_world" not in out and "train_world_reference_fr" not in out
    assert "results-paper/world" not in out
    assert "data/stylegan2-ffhq-256x256.pkl" in out  # the generator is an input of its jobs
    assert "results-paper/covariates/landmarks/landmarks.csv" in out  # detected, then read
    # Every job asks for what config/paper.yaml's resources give its stage, and each stage of
    # the paper has its entry there.
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["resources"]
    jobs = job_resources(out)
    assert set(jobs) == set(paper)
    for rule, asked in jobs.items():
        r = paper[rule]
        assert asked == {(r["threads"], r["mem_mb"], r["runtime"], r["gpu"])}, rule


PAPER_TINY = """
reference_fr: {arch: iresnet18}
real_models:
  casia-webface: {arch: ir_18}
identities:
  langevin: {n: 4, iterations: 1, compile: false}   # a CPU: bf16 autocast runs, no compiling
  random: {n: 4}
variations:
  dispersion: {variations: 2, iterations: 1}
  disco: {variations: 2, iterations: 1}
datasets:
  langevin-dispersion: {identities: langevin, variations: dispersion, shards: 1}
  langevin-disco: {identities: langevin, variations: disco, shards: 1}
  random-dispersion: {identities: random, variations: dispersion, shards: 1}
covariates:
  multipie: data/multipie
  shards: 1    # sharded stages are tested on their own; each job here costs a process start
  folds: 2
  detection: {shards: 1}
  projection: {steps: 3, batch_size: 16, w_avg_samples: 200, max_loss: 100.0}  # random weights fit no photo
  subsets: {pose_negative: ["13_0", "14_0"], pose_positive: ["05_0", "04_1"]}
training:
  recipe: {layers: [1, 1, 1, 1], widths: [4, 8, 8, 16], input_size: 16, embedding_size: 16,
           batch_size: 8, epochs: 1, milestones: [1], workers: 0}
ijb: {shards: 1, workers: 0}
"""


@pytest.mark.slow
def test_the_paper_config_on_tiny_files_in_the_real_formats(tmp_path):
    """config/paper.yaml end to end, on files written in the formats users have: an NVIDIA
    StyleGAN2 pickle (random weights, 32 px), an insightface iResNet-18 backbone.pth, a
    Multi-PIE tree without landmarks (detected with dlib) and insightface .bin sets; counts
    made tiny by an override. No world rule may run."""
    import torch
    from nvidia_format import random_net, tiny_config, write_network_pickle

    from brownface import config
    from brownface.models.adaface import adaface_ir
    from brownface.models.iresnet import iresnet
    from brownface.store import IdentityStore
    from brownface.world.ijb_set import build_ijbc
    from brownface.world.stages import (
        build_world_cfp_fp,
        build_world_lfw,
        build_world_multipie,
        world_renderer,
    )

    write_config(tmp_path, "seed: 0\n")
    data = tmp_path / "data"
    data.mkdir()
    write_network_pickle(random_net(tiny_config()), data / "stylegan2-ffhq-256x256.pkl")
    torch.manual_seed(0)
    torch.save(iresnet("r18").state_dict(), data / "backbone.pth")
    adaface = {"model." + k: v for k, v in adaface_ir("ir_18").state_dict().items()}
    lightning = {"state_dict": {**adaface, "head.kernel": torch.randn(512, 4)}, "epoch": 1}
    torch.save(lightning, data / "adaface_ir50_casia.ckpt")  # AdaFace's Lightning layout
    world = config.validate(
        {"world": {
            "multipie": {"subjects": 2, "image_size": 128,
                         "cameras": ["13_0", "14_0", "05_1", "05_0", "04_1"], "flashes": [2, 7, 12]},
            "benchmarks": {"lfw_pairs_per_fold": 2, "cfp_fp_people_per_fold": 2, "image_size": 64},
        }}
    )["world"]  # fmt: skip
    build_world_multipie(world, data / "multipie", tmp_path / "unused_landmarks.csv")
    (tmp_path / "unused_landmarks.csv").unlink()  # real Multi-PIE has none
    build_world_lfw(world, data / "lfw.bin", tmp_path / "lfw_tree", tmp_path / "pairs.txt")
    build_world_cfp_fp(world, data / "cfp_fp.bin")
    for name in ("agedb_30", "calfw", "cplfw"):  # the same format; other pairs are not needed
        shutil.copy(data / "lfw.bin", data / f"{name}.bin")
    for name in ("ijbb", "ijbc"):  # insightface's layout with NIST's 1:N lists, 3 subjects
        root = data / "IJB_release" / name.upper()
        build_ijbc(world_renderer(world), 0, root, subjects=3, image_size=64, prefix=name)
    (tmp_path / "config" / "tiny.yaml").write_text(PAPER_TINY)
    configs = [str(REPO / "config" / "paper.yaml"), str(tmp_path / "config" / "tiny.yaml")]
    run = snakemake(tmp_path, "--configfile", *configs)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "build_world" not in out and "train_world_reference_fr" not in out
    results = tmp_path / "results-paper"
    assert not (results / "world").exists()
    report = (results / "report" / "table.md").read_text()
    for name in ("langevin-dispersion", "langevin-disco", "random-dispersion"):
        assert name in report
    assert "real data (world" not in report  # the world's network is no row here
    assert "| CASIA-WebFace (10k identities, 0.5M images) |" in report  # real_models
    casia = json.loads((results / "evaluation" / "casia-webface" / "lfw.json").read_text())
    assert casia["model_kind"] == "adaface" and casia["model"] == "casia-webface"
    columns = ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw", "IJB-B TAR@1e-4", "IJB-C TAR@1e-5")
    assert all(name in report.splitlines()[0] for name in columns)
    ids = IdentityStore.read(results / "identities" / "langevin" / "identities.h5").provenance
    assert ids["generator"]["kind"] == "stylegan2" and ids["generator"]["checkpoint_sha256"]
    assert ids["reference_fr"]["kind"] == "iresnet"
    assert (results / "covariates" / "landmarks" / "skipped.csv").is_file()


def test_a_missing_configured_file_is_one_line_naming_its_key(tmp_path):
    write_config(tmp_path, "seed: 0\n")
    for rel in PAPER_DIRS:
        (tmp_path / rel).mkdir(parents=True)
    for rel in PAPER_FILES:
        if "calfw" not in rel:
            (tmp_path / rel).touch()
    run = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "paper.yaml"))
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if "brownface: error" in line]
    assert lines == [
        "brownface: error: config: verification_sets.calfw: data/calfw.bin does not exist"
    ]


def job_resources(out: str) -> dict[str, set[tuple[int, int, int, int]]]:
    """rule -> the (threads, mem_mb, runtime, gpu) of its jobs, from a dry run's job blocks."""
    jobs: dict[str, set[tuple[int, int, int, int]]] = {}
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        fields = dict(
            line.strip().split(": ", 1) for line in block.splitlines()[1:] if ": " in line
        )
        res = dict(kv.split("=", 1) for kv in fields.get("resources", "").split(", ") if kv)
        if "mem_mb" not in res:
            continue  # a local aggregate rule (all): no job of its own
        threads = int(fields.get("threads", 1))  # Snakemake prints threads above 1 only
        key = (threads, int(res["mem_mb"]), int(res["runtime"]), int(res["gpu"]))
        jobs.setdefault(rule, set()).add(key)
    return jobs


def test_every_job_asks_for_its_stage_resources(tmp_path):
    """Threads, memory, wall time and GPUs of every job come from config resources (the
    schema's demo defaults); one stage overridden changes that stage only, and
    training.gpus asks for that many GPUs."""
    from brownface import config as brownface_config

    write_config(tmp_path, FULL)
    run = snakemake(tmp_path, "-n", "--cores", "8")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = job_resources(run.stdout + run.stderr)
    defaults = brownface_config.validate(
        brownface_config.read_yaml(tmp_path / "config" / "config.yaml")
    )
    stages = defaults["resources"]
    assert len(jobs) >= 18 and set(jobs) <= set(stages)
    for rule, asked in jobs.items():
        r = stages[rule]
        assert asked == {(r["threads"], r["mem_mb"], r["runtime"], r["gpu"])}, rule
    assert stages["train_fr"]["gpu"] == 1 and stages["ijb_score"]["gpu"] == 0

    override = tmp_path / "config" / "site.yaml"
    override.write_text("resources: {ijb_score: {mem_mb: 123}}\ntraining: {gpus: 4}\n")
    run = snakemake(tmp_path, "-n", "--cores", "8", "--configfile", str(override))
    assert run.returncode == 0, run.stderr[-3000:]
    changed = job_resources(run.stdout + run.stderr)
    r = stages["ijb_score"]
    assert changed["ijb_score"] == {(r["threads"], 123, r["runtime"], r["gpu"])}
    r = stages["train_fr"]
    assert changed["train_fr"] == {(r["threads"], r["mem_mb"], r["runtime"], 4)}
    assert {k: v for k, v in changed.items() if k not in ("ijb_score", "train_fr")} == {
        k: v for k, v in jobs.items() if k not in ("ijb_score", "train_fr")
    }


def test_real_faces_are_embedded_in_shards_and_avoided(tmp_path):
    """A face collection (config real_faces) embedded by two jobs and merged; an identities
    recipe that avoids it depends on it (and on nothing of the world's reference network)."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_leakage_embed import image_folder
    from worldkit import small_fr_file

    from brownface.store import EmbeddingStore

    image_folder(tmp_path / "faces", people=5, per_person=4)
    small_fr_file(tmp_path / "fr.pt")
    write_config(
        tmp_path,
        "reference_fr: {kind: brownface, checkpoint: fr.pt}\n"
        "real_faces:\n  people: {source: image_folder, path: faces, shards: 2, batch_size: 4}\n"
        "identities:\n  lang: {algorithm: langevin, n: 4, iterations: 1,"
        " avoid: results/leakage/people/embeddings.h5}\n",
    )
    store = "results/leakage/people/embeddings.h5"
    run = snakemake(tmp_path, store)
    assert run.returncode == 0, run.stderr[-3000:]
    embeddings = EmbeddingStore.read(tmp_path / store)
    assert len(embeddings) == 20 and embeddings.embedding.shape[1] == 32
    assert embeddings.identity_means()[0].tolist() == [f"person{i}" for i in range(5)]
    assert (tmp_path / "results" / "leakage" / "people" / "shard001.h5").is_file()
    identities = "results/identities/lang/identities.h5"
    assert plan(tmp_path, identities) == {"sample_identities": 1}
    forced = plan(tmp_path, identities, "--forcerun", "embed_real_faces")
    assert forced == {"embed_real_faces": 2, "merge_real_faces": 1, "sample_identities": 1}


def test_every_dataset_is_measured_against_every_real_face_collection(tmp_path):
    (tmp_path / "faces" / "p0").mkdir(parents=True)
    (tmp_path / "faces" / "p0" / "0.png").write_bytes(b"")
    write_config(
        tmp_path,
        FULL + "real_faces:\n  people: {source: image_folder, path: faces}\n"
        "leakage: {fars: [0.01]}\n",
    )
    jobs = plan(tmp_path, "leakage")
    assert {k: jobs[k] for k in ("embed_real_faces", "merge_real_faces", "measure_leakage")} == {
        "embed_real_faces": 1, "merge_real_faces": 1, "measure_leakage": 1
    }  # fmt: skip
    assert "build_world_lfw" in jobs  # the thresholds' verification set
    write_config(
        tmp_path,
        FULL + "real_faces:\n  people: {source: image_folder, path: faces}\n"
        "leakage: {verification_set: cfp}\n",
    )
    run = snakemake(tmp_path, "-n", "leakage")
    assert run.returncode != 0 and "leakage.verification_set: expected a .bin set" in run.stderr


def test_the_capacity_analysis_runs_each_n_once_and_reuses_the_recipe_store(tmp_path):
    write_config(tmp_path, FULL + "capacity: {identities: lang, ns: [4, 8, 16]}\n")
    jobs = plan(tmp_path, "capacity")
    assert {k: jobs.get(k) for k in ("capacity_identities", "identity_capacity", "sample_identities")} == {
        "capacity_identities": 2, "identity_capacity": 1, "sample_identities": 1
    }  # fmt: skip
    assert "identity_capacity" in plan(tmp_path)  # part of the default target
    write_config(tmp_path, FULL + "capacity: {identities: nope, ns: [4]}\n")
    run = snakemake(tmp_path, "-n", "capacity")
    assert run.returncode != 0
    assert "capacity.identities: no identities recipe named 'nope' (known: lang)" in run.stderr
