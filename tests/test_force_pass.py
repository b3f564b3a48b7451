"""The force pass's numerics and memory: bf16 autocast against float32, activation
checkpointing (same bits, less kept), the memory estimate, and NHWC."""

import pytest
import torch
from nvidia_format import random_net, tiny_config
from worldkit import small_embedder, small_fr

from brownface.models.generator import GeneratorSpec
from brownface.models.stylegan2 import StyleGAN2Generator
from brownface.sampling.dispersion import VariationParams, embedding_forces
from brownface.sampling.embedder import LatentEmbedder, embed_all
from brownface.sampling.force_pass import ForcePass, prepared, saved_bytes_per_identity
from brownface.sampling.geometry import nearest_angles
from brownface.sampling.langevin import (
    IdentityParams,
    embeddings_and_forces,
    interaction_forces,
    random_latents,
)


def stylegan2_embedder() -> LatentEmbedder:
    """A random-weight 32 px StyleGAN2 (the real synthesis ops) and the small iResNet."""
    spec = GeneratorSpec(kind="stylegan2", checkpoint="unused.pkl", truncation_psi=0.7)
    return LatentEmbedder(StyleGAN2Generator(random_net(tiny_config()), spec), small_fr()).eval()


@pytest.fixture(scope="module")
def sg_embedder():
    return stylegan2_embedder()


def start(embedder, n=12):
    w = random_latents(embedder, n, truncation_psi=0.7, seed=0)
    fixed = embed_all(embedder, w, 8)
    d0 = 1.05 * nearest_angles(fixed, 64).max().item()  # every identity feels a neighbour
    return w, fixed, d0


def test_bf16_autocast_forces_match_float32(sg_embedder):
    """The bf16 path (autocast on this CPU, as on CUDA) gives each identity's force within
    cosine 0.99 of float32's; the forces themselves stay float32."""
    w, fixed, d0 = start(sg_embedder)
    f32 = interaction_forces(sg_embedder, w, fixed, 1.0, d0, 4, 64)
    bf16 = interaction_forces(
        sg_embedder, w, fixed, 1.0, d0, 4, 64, fp=ForcePass(4, 64, precision="bf16")
    )
    assert bf16.dtype == torch.float32
    assert f32.norm(dim=1).min() > 0
    cos = torch.nn.functional.cosine_similarity(bf16, f32, dim=1)
    assert cos.min() >= 0.99, cos
    assert not torch.equal(bf16, f32)  # the networks did compute in bf16


@pytest.mark.parametrize("kind", ["stylegan2", "world"])
def test_activation_checkpointing_gives_the_same_bits(kind, sg_embedder):
    embedder = sg_embedder if kind == "stylegan2" else small_embedder()
    w, fixed, d0 = start(embedder, n=6)
    plain = interaction_forces(embedder, w, fixed, 1.0, d0, 3, 64)
    again = interaction_forces(
        embedder, w, fixed, 1.0, d0, 3, 64, fp=ForcePass(3, 64, checkpointing=True)
    )
    assert torch.equal(plain, again)


def test_checkpointing_keeps_less_and_the_estimate_is_per_identity(sg_embedder):
    plain = saved_bytes_per_identity(sg_embedder, ForcePass(2))
    kept = saved_bytes_per_identity(sg_embedder, ForcePass(2, checkpointing=True))
    assert 0 < kept < 0.5 * plain
    # Per identity: the same at batch 2 and 4, up to the batch-independent parameters' share.
    four = saved_bytes_per_identity(sg_embedder, ForcePass(4), batch=4)
    assert abs(four - plain) < 0.1 * plain


def test_shared_embeddings_are_the_plain_ones_and_forces_equal(sg_embedder):
    """The force pass's own embeddings are e(w) bit for bit, and its forces are the plain
    recomputing pass's, for one batch and for several (the last batch's graph reused)."""
    w, fixed, d0 = start(sg_embedder, n=10)
    params = IdentityParams(algorithm="langevin", n=10, d0=d0, block_size=64)
    for batch in (4, 16):
        fp = ForcePass(batch, 64)
        e, forces = embeddings_and_forces(sg_embedder, w, params, fp)
        assert torch.equal(e, embed_all(sg_embedder, w, batch))
        assert torch.equal(forces, interaction_forces(sg_embedder, w, e, 1.0, d0, batch, 64))


def test_channels_last_keeps_the_forces(sg_embedder):
    embedder = stylegan2_embedder().use_channels_last()
    w, fixed, d0 = start(sg_embedder, n=6)
    ref = interaction_forces(sg_embedder, w, fixed, 1.0, d0, 3, 64)
    nhwc = interaction_forces(embedder, w, fixed, 1.0, d0, 3, 64)
    assert embedder.fr.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(nhwc, ref, rtol=1e-4, atol=1e-6)


def test_dispersion_passes_take_the_same_settings(sg_embedder):
    """Dispersion's embedding pull through the same force pass: checkpointing keeps the bits,
    and bf16 stays within cosine 0.95 per image (0.975 at worst here: the pull's gradient
    is a smaller signal than Langevin's repulsion; float32 remains the default)."""
    w, fixed, _ = start(sg_embedder, n=6)
    ref = fixed.roll(1, dims=0)  # each image pulled towards another identity's embedding
    plain, e = embedding_forces(sg_embedder, w, ref, 1.0, 3)
    ckpt, e2 = embedding_forces(sg_embedder, w, ref, 1.0, 3, ForcePass(3, checkpointing=True))
    assert torch.equal(plain, ckpt) and torch.equal(e, e2)
    bf16, _ = embedding_forces(sg_embedder, w, ref, 1.0, 3, ForcePass(3, precision="bf16"))
    assert torch.nn.functional.cosine_similarity(bf16, plain, dim=1).min() >= 0.95
    params = VariationParams(algorithm="dispersion", precision="bf16", batch_size=8)
    assert params.force_pass() == ForcePass(8, precision="bf16")


@pytest.mark.slow
def test_compiled_networks_give_the_eager_forces():
    """compile: true (torch.compile of synthesis and FR, inductor on this CPU) computes the
    same forces to round-off; preparing twice compiles once."""
    embedder = stylegan2_embedder()
    w, fixed, d0 = start(embedder, n=6)
    eager = interaction_forces(embedder, w, fixed, 1.0, d0, 3, 64)
    compiled = prepared(embedder, channels_last=False, compile=True)
    assert compiled is embedder and prepared(embedder, False, True).compiled
    got = interaction_forces(compiled, w, fixed, 1.0, d0, 3, 64)
    torch.testing.assert_close(got, eager, rtol=1e-4, atol=1e-5 * eager.abs().max().item())
