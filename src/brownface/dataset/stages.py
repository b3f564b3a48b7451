"""Stage entry points of the render rules: one render shard, the merge, the card, the sheet."""

from __future__ import annotations

import math
from pathlib import Path

from brownface.dataset.card import dataset_card, write_card
from brownface.dataset.layout import read_index
from brownface.dataset.render import RenderSettings, merge_rendered, render_variations
from brownface.dataset.sheet import contact_sheet
from brownface.models.device import resolve_device
from brownface.models.fr import FRSpec, fr_provenance
from brownface.models.generator import GeneratorSpec, load_generator
from brownface.store import IdentityStore, VariationStore


def render_dataset(
    generator: GeneratorSpec,  # reads noise_mode (truncation_psi unused)
    settings: RenderSettings,
    *,
    variations: str | Path,  # the dataset's variations.h5
    out_root: str | Path,  # this shard's directory
    image_size: int,  # the training recipe's input size
    shard: int,  # this job's shard, 0 <= shard < shards
    shards: int,
    device: str = "auto",
) -> None:
    """One shard (an identity range) of a dataset's images, with its partial index.csv."""
    gen = load_generator(generator, resolve_device(device))
    render_variations(
        gen, Path(variations), Path(out_root), image_size, settings, shard=shard, shards=shards
    )


def merge_render_shards(shards: list[str], out_root: str | Path) -> None:
    """The dataset root train_fr reads (images/ + index.csv), the same for any shard count."""
    merge_rendered(shards, out_root)


def write_dataset_card(
    generator: GeneratorSpec,
    reference_fr: FRSpec,
    settings: RenderSettings,
    *,
    dataset: str,
    recipes: dict[str, dict],  # identities / variations: {name, recipe} (validated config)
    seed: int,
    image_size: int,
    identities: str | Path,  # identities.h5
    variations: str | Path,  # variations.h5
    rendered: str | Path,  # the rendered dataset root
    out: str | Path,  # card.json
) -> None:
    """card.json: counts, recipes, models with their weights' sha256, provenance, angles."""
    ict = recipes["identities"]["recipe"].get("ict")
    write_card(
        dataset_card(
            dataset=dataset,
            recipes=recipes,
            seed=seed,
            generator=generator.provenance(),
            reference_fr=fr_provenance(reference_fr),
            identities=IdentityStore.read(identities),
            variations=VariationStore.read(variations),
            images=read_index(rendered),
            render={"image_size": int(image_size), **settings.describe()},
            ict_deg=None if ict is None else math.degrees(ict),
        ),
        out,
    )


def plot_contact_sheet(rendered: str | Path, out: str | Path) -> None:
    """contact_sheet.png: the first identities x their reference and first variations."""
    contact_sheet(rendered, out)
