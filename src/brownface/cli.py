"""The ``brownface`` command: inspect stores, render faces, look at the world.

User mistakes (bad config, missing or wrong file) end with one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from brownface import __version__
from brownface.errors import UserError
from brownface.runlog import tune_allocator

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _is_hdf5(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == HDF5_SIGNATURE


def _describe_checkpoint(path: str) -> str:
    """A generator checkpoint's format, architecture, parameter count and sha256."""
    from brownface.models.checkpoints import sha256_file
    from brownface.models.stylegan2_checkpoints import read_stylegan2

    info = read_stylegan2(path).describe()
    lines = [f"{path}: {info.pop('architecture')} generator ({info.pop('format')})"]
    lines.append(f"  parameters: {info.pop('parameters'):,}")
    lines += [f"  {key}: {value}" for key, value in info.items()]
    lines.append(f"  sha256: {sha256_file(path)}")
    return "\n".join(lines)


def _cmd_inspect(args: argparse.Namespace) -> None:
    from brownface.store import digests, summarize

    for path in args.files:
        if Path(path).is_dir():
            raise UserError(f"{path}: is a directory; expected a store file (.h5) or a checkpoint")
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
    for path in args.files:
        if not _is_hdf5(path):
            if args.digests:
                raise UserError(f"{path}: --digests reads brownface stores (.h5) only")
            print(_describe_checkpoint(path))
        elif args.digests:
            for name, digest in digests(path).items():
                print(f"{digest}  {path}:{name}")
        else:
            print(summarize(path))


def seed_latent(seed: int, z_dim: int) -> torch.Tensor:
    """z for an integer seed, as NVIDIA's generate scripts draw it (RandomState(seed).randn)."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float()


def _cmd_generate(args: argparse.Namespace) -> None:
    from brownface import config as cfg
    from brownface.imageio import save_image, to_uint8
    from brownface.models.device import resolve_device
    from brownface.models.generator import generator_spec, load_generator

    overrides: dict = {}
    if args.checkpoint is not None:  # any StyleGAN2 file, whatever the config's generator
        overrides = {"kind": "stylegan2", "checkpoint": args.checkpoint, "crop": None}
    if args.noise_mode is not None:
        overrides["noise_mode"] = args.noise_mode
    config = cfg.load(args.config, generator=overrides)
    device = resolve_device(config["device"])
    spec = generator_spec(config)
    gen = load_generator(spec, device)
    psi = spec.truncation_psi if args.truncation is None else args.truncation
    with torch.no_grad():
        w = gen.mapping(seed_latent(args.seed, gen.z_dim).to(device), truncation_psi=psi)
        image = gen.synthesis(w)
    save_image(args.out, to_uint8(image)[0])
    print(f"wrote {args.out} ({spec.kind}, seed {args.seed}, truncation {psi})")


def _cmd_convert(args: argparse.Namespace) -> None:
    from brownface.models.stylegan2_checkpoints import convert

    weights = convert(args.checkpoint, args.out)
    info = weights.describe()
    print(
        f"wrote {args.out}: {info['architecture']} from {info['format']} "
        f"({info['parameters']:,} parameters)"
    )


def _cmd_world_sheet(args: argparse.Namespace) -> None:
    from brownface import config as cfg
    from brownface.world.sheet import world_sheet
    from brownface.world.stages import world_renderer

    config = cfg.load(args.config) if args.config else cfg.validate({})
    renderer = world_renderer(config["world"])
    world_sheet(renderer, config["world"]["seed"], Path(args.out), args.identities, args.size)
    print(f"wrote {args.out}")


def _cmd_check_config(args: argparse.Namespace) -> None:
    from brownface import config as cfg

    for path in args.files:
        config = cfg.load(path)
        print(
            f"{path}: valid ({len(config['datasets'])} datasets, generator "
            f"{config['generator']['kind']}, results in {config['results']}/)"
        )


def _cmd_study(args: argparse.Namespace) -> None:

    from brownface.report.study import run_study
    from brownface.runlog import configure_logging

    configure_logging()
    snakefile = Path(args.snakefile)
    if not snakefile.is_file():
        raise UserError(f"{snakefile}: Snakefile not found (run from the repository root)")
    claims = run_study(args.config, args.seeds, args.out, cores=args.cores, snakefile=snakefile)
    verdicts = claims.groupby("verdict").size().to_dict()
    print(f"wrote {args.out}/study_table.md and {args.out}/claims.md; verdicts: {verdicts}")


def _cmd_edit(args: argparse.Namespace) -> None:
    from brownface import config as cfg
    from brownface.covariates.edit import edit_image
    from brownface.models.device import resolve_device
    from brownface.models.generator import generator_spec, load_generator

    config = cfg.load(args.config)
    gen = load_generator(generator_spec(config), resolve_device(config["device"]))
    covariates = args.covariates or config["covariates"]["path"]
    edit_image(gen, args.latent, args.index, covariates, args.direction, args.amount, args.out)
    print(f"wrote {args.out} ({args.direction} {args.amount:+g})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brownface",
        description="Synthetic face datasets from Brownian identity diffusion.",
    )
    parser.add_argument("--version", action="version", version=f"brownface {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "inspect",
        help="summarise brownface stores (kind, shapes, provenance) or generator checkpoints",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="an .h5 store written by brownface, or a generator checkpoint (.pkl, .pt)",
    )
    p.add_argument(
        "--digests",
        action="store_true",
        help="print the sha256 of every dataset's values instead (compare runs with diff)",
    )
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser(
        "check-config", help="validate config files (syntax, keys, values) as the workflow does"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="a workflow config (YAML)")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("generate", help="render one face from the configured generator")
    p.add_argument("--config", default="config/config.yaml", help="workflow config (YAML)")
    p.add_argument("--seed", type=int, required=True, help="latent seed (as NVIDIA's scripts)")
    p.add_argument("--truncation", type=float, default=None, help="override truncation psi")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="render from this StyleGAN2 file (.pkl, rosinality .pt, generator.pt) instead",
    )
    p.add_argument("--noise-mode", choices=["const", "random", "none"], default=None)
    p.add_argument("--out", required=True, help="output image (.png or .jpg)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser(
        "convert", help="rewrite a StyleGAN2 checkpoint as a plain generator.pt (fast, safe)"
    )
    p.add_argument("checkpoint", help="NVIDIA .pkl, rosinality .pt or brownface generator.pt")
    p.add_argument("--out", required=True, help="the generator.pt to write")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("edit", help="render a stored latent moved along a covariate direction")
    p.add_argument("--config", default="config/config.yaml", help="workflow config (YAML)")
    p.add_argument("--latent", required=True, help="identities.h5 or projections.h5")
    p.add_argument("--index", type=int, default=0, help="row of the latent")
    p.add_argument("--direction", required=True, help="pose, illumination, smile, surprise, ...")
    p.add_argument("--amount", type=float, required=True, help="in units of the direction's E_d")
    p.add_argument("--covariates", default=None, help="covariates.h5 (default: config's)")
    p.add_argument("--out", required=True, help="output image")
    p.set_defaults(func=_cmd_edit)

    p = sub.add_parser(
        "study", help="the workflow once per seed, then mean +- std and the paper's orderings"
    )
    p.add_argument("--config", default="config/config.yaml", help="base workflow config")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to run")
    p.add_argument("--out", default="results-study", help="study directory")
    p.add_argument("--cores", type=int, default=2, help="cores of each workflow run")
    p.add_argument("--snakefile", default="Snakefile", help="the workflow's Snakefile")
    p.set_defaults(func=_cmd_study)

    p = sub.add_parser("world-sheet", help="grid of world identities x pose, light, expression")
    p.add_argument("--config", default=None, help="workflow config (default: built-in defaults)")
    p.add_argument("--identities", type=int, default=8, help="rows (identities)")
    p.add_argument("--size", type=int, default=96, help="tile size in pixels")
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(func=_cmd_world_sheet)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_allocator()
    try:
        args.func(args)
    except UserError as exc:
        print(f"brownface: error: {exc}", file=sys.stderr)
        return 1
    return 0


def cli() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
