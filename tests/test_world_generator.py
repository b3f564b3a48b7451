"""The demo world's generator: mapping statistics, truncation, determinism, the oracle heads."""

import pytest
import torch

from brownface.seeding import torch_generator
from brownface.world.generator import N_NUISANCE, W_AVG_SAMPLES, WorldGenerator
from brownface.world.renderer import EXPRESSIONS, FaceParams

Z_DIM = W_DIM = 32
ID_DIM = 16
N_OUT = ID_DIM + N_NUISANCE  # 32 head outputs, one per latent dimension


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):  # conftest: small tensors, steadier on a shared machine
    yield


@pytest.fixture(scope="module")
def gen():
    return WorldGenerator(seed=0)


def normal(n: int, dim: int = Z_DIM, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def head_outputs(g: WorldGenerator, w: torch.Tensor) -> torch.Tensor:
    """identity_params and the nuisance values side by side: [B, 32]."""
    nu = g.nuisance_params(w)
    scalars = [nu[k][:, None] for k in SCALARS]
    return torch.cat([g.identity_params(w), *scalars, nu["expression"], nu["background"]], 1)


SCALARS = (
    "yaw",
    "pitch",
    "light_azimuth",
    "light_strength",
    "ambient",
    "background_gradient",
    "light_tint",
    "hair_phase",
)


# -- mapping and truncation ---------------------------------------------------------------
def test_w_avg_is_the_mean_of_the_mapping(gen):
    assert gen.w_avg.shape == (W_DIM,)
    # The documented sample reproduces w_avg ...
    z = torch.randn(W_AVG_SAMPLES, Z_DIM, generator=torch_generator(0, "world/w_avg"))
    torch.testing.assert_close(gen.mapping(z).mean(0), gen.w_avg)
    # ... and fresh latents agree within sampling error.
    w = gen.mapping(normal(10_000, seed=1))
    tol = 6 * (2**0.5) * w.std(0) / 10_000**0.5
    assert ((w.mean(0) - gen.w_avg).abs() < tol).all()


def test_truncation(gen):
    z = normal(64, seed=2)
    w = gen.mapping(z)
    assert torch.equal(gen.mapping(z, truncation_psi=1.0), w)
    assert torch.equal(gen.mapping(z, truncation_psi=0.0), gen.w_avg.expand_as(w))
    for psi in (0.5, 0.7, -0.3, 1.5):
        expected = gen.w_avg + psi * (w - gen.w_avg)
        torch.testing.assert_close(gen.mapping(z, truncation_psi=psi), expected, rtol=0, atol=1e-6)
    # Truncation pulls latents towards the average.
    d_full = (w - gen.w_avg).norm(dim=1)
    d_half = (gen.mapping(z, truncation_psi=0.5) - gen.w_avg).norm(dim=1)
    torch.testing.assert_close(d_half, 0.5 * d_full)


def test_mapping_normalises_the_scale_of_z(gen):
    """StyleGAN's 2nd-moment normalisation: z and c * z map to the same w."""
    z = normal(8, seed=3)
    torch.testing.assert_close(gen.mapping(3.0 * z), gen.mapping(z), rtol=1e-5, atol=1e-5)


# -- determinism --------------------------------------------------------------------------
def test_same_seed_same_world(gen):
    other = WorldGenerator(seed=0)
    a, b = dict(gen.named_buffers()), dict(other.named_buffers())
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    z = normal(4, seed=4)
    w = gen.mapping(z, truncation_psi=0.7)
    assert torch.equal(other.mapping(z, truncation_psi=0.7), w)
    im, lm = gen.render(w)
    im2, lm2 = other.render(w)
    assert torch.equal(im, im2) and torch.equal(lm, lm2)


def test_different_seed_different_world(gen):
    other = WorldGenerator(seed=1)
    assert not torch.equal(gen.fc0_w, other.fc0_w) and not torch.equal(gen.w_avg, other.w_avg)
    assert not torch.equal(gen.renderer.mix, other.renderer.mix)
    z = normal(4, seed=5)
    im = gen.synthesis(gen.mapping(z))
    im2 = other.synthesis(other.mapping(z))
    assert (im - im2).abs().mean() > 0.02


def test_spec_describes_the_generator(gen):
    options = dict(seed=0, z_dim=Z_DIM, w_dim=W_DIM, identity_dim=ID_DIM, resolution=64)
    assert gen.spec.kind == "world" and gen.spec.options == options
    assert gen.img_resolution == 64 and gen.z_dim == Z_DIM and gen.w_dim == W_DIM
    assert gen.num_ws == 1


# -- synthesis and the oracle -------------------------------------------------------------
def test_synthesis_is_the_renderer_of_face_params(gen):
    w = gen.mapping(normal(4, seed=6))
    images, landmarks = gen.render(w)
    ref_images, ref_landmarks = gen.renderer(gen.face_params(w))
    assert torch.equal(gen.synthesis(w), ref_images)
    assert torch.equal(images, ref_images) and torch.equal(landmarks, ref_landmarks)
    assert images.shape == (4, 3, 64, 64) and landmarks.shape == (4, 5, 2)
    assert torch.isfinite(images).all() and images.min() >= -1 and images.max() <= 1


def test_face_params_are_the_oracle_values(gen):
    w = gen.mapping(normal(8, seed=7))
    p = gen.face_params(w)
    assert isinstance(p, FaceParams)
    assert torch.equal(p.identity, gen.identity_params(w))
    for key, value in gen.nuisance_params(w).items():
        assert torch.equal(getattr(p, key), value), key
    # Aligned framing: no roll, unit scale, no shift.
    assert (p.roll == 0).all() and (p.scale == 1).all() and (p.shift == 0).all()


def test_oracle_ranges_and_shapes(gen):
    w = gen.mapping(normal(2000, seed=8))
    extreme = gen.w_avg + 10 * (w[:200] - gen.w_avg)  # far out in the tails
    for ws in (w, extreme):
        ident = gen.identity_params(ws)
        nu = gen.nuisance_params(ws)
        n = ws.shape[0]
        assert ident.shape == (n, ID_DIM) and torch.isfinite(ident).all()
        assert set(nu) == {*SCALARS, "expression", "background"}
        assert nu["expression"].shape == (n, len(EXPRESSIONS))
        assert nu["background"].shape == (n, 3)
        assert ((nu["background"] >= 0) & (nu["background"] <= 1)).all()
        assert (nu["light_tint"].abs() <= 1).all()
        for key in SCALARS:
            assert nu[key].shape == (n,), key
        assert (nu["yaw"].abs() <= 90).all() and (nu["pitch"].abs() <= 30).all()
        assert (nu["light_azimuth"].abs() <= 90).all()
        assert ((nu["light_strength"] >= 0) & (nu["light_strength"] <= 1)).all()
        assert ((nu["ambient"] >= 0) & (nu["ambient"] <= 1)).all()
        assert ((nu["expression"] >= 0) & (nu["expression"] <= 1)).all()


def test_oracle_distribution_is_face_like(gen):
    """Standard-normal identities; mostly near-frontal, near-neutral faces with some spread."""
    w = gen.mapping(normal(10_000, seed=9))
    ident = gen.identity_params(w)
    assert ident.mean(0).abs().max() < 0.1
    assert ((ident.std(0) > 0.9) & (ident.std(0) < 1.1)).all()
    nu = gen.nuisance_params(w)
    yaw = nu["yaw"].abs()
    assert yaw.median() < 30 and (yaw > 45).float().mean() > 0.01
    assert nu["expression"].median() < 0.3 and (nu["expression"] > 0.5).any(0).all()


# -- every latent direction matters ---------------------------------------------------------
def head_jacobians(g: WorldGenerator, n: int = 3) -> list[torch.Tensor]:
    w = g.mapping(normal(n, seed=10, dtype=torch.float64))
    return [
        torch.autograd.functional.jacobian(lambda x: head_outputs(g, x[None])[0], w[i])
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def gen64():
    return WorldGenerator(seed=0).double()


def test_head_jacobian_has_maximal_rank_and_no_dead_coordinate(gen64):
    for jac in head_jacobians(gen64):
        assert jac.shape == (N_OUT, W_DIM)
        # Full rank = every output (identity, pose, light, expression, scene) moves independently.
        assert torch.linalg.matrix_rank(jac) == min(N_OUT, W_DIM)
        col = jac.norm(dim=0)
        assert col.min() > 1e-2 * col.max(), col  # every coordinate of w moves the outputs


def test_image_jacobian_loses_no_head_dimension(gen64):
    """Rows of P J for random image projections P (one backward pass for 48 of them)."""
    w = gen64.mapping(normal(2, seed=11, dtype=torch.float64))
    projections = torch.Generator().manual_seed(12)
    for i in range(2):
        k = 48
        wr = w[i : i + 1].repeat(k, 1).requires_grad_(True)
        images = gen64.synthesis(wr)
        proj = torch.randn(images.shape, generator=projections, dtype=torch.float64)
        (pj,) = torch.autograd.grad((images * proj).sum(), wr)  # [k, w_dim]
        sv = torch.linalg.svdvals(pj)
        assert (sv[:N_OUT] > 1e-7 * sv[0]).all(), sv  # full rank ...
        col = pj.norm(dim=0)
        assert col.min() > 1e-2 * col.max(), col  # ... and no coordinate of w is dead


def test_no_latent_direction_is_without_effect(gen64):
    for jac in head_jacobians(gen64):
        assert torch.linalg.matrix_rank(jac) == W_DIM


def test_moving_w_changes_identity_and_nuisance(gen):
    """Entanglement: a random latent step changes who it is and how it is seen."""
    w = gen.mapping(normal(8, seed=13))
    step = normal(8, W_DIM, seed=14)
    step = 0.5 * gen.w_std * step / step.norm(dim=1, keepdim=True) * W_DIM**0.5
    before, after = head_outputs(gen, w), head_outputs(gen, w + step)
    d_identity = (after[:, :ID_DIM] - before[:, :ID_DIM]).norm(dim=1)
    nu0, nu1 = gen.nuisance_params(w), gen.nuisance_params(w + step)
    d_yaw = (nu1["yaw"] - nu0["yaw"]).abs()
    d_expr = (nu1["expression"] - nu0["expression"]).abs().sum(1)
    d_light = (nu1["light_azimuth"] - nu0["light_azimuth"]).abs()
    assert (d_identity > 0.1).all(), d_identity
    assert ((d_yaw > 0.5) | (d_light > 0.5) | (d_expr > 0.01)).all()
    assert (after[:, ID_DIM:] - before[:, ID_DIM:]).abs().sum(1).min() > 0.05


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, Z_DIM - 1), (Z_DIM,), (2, 2, Z_DIM)])
def test_bad_z_shape_raises(gen, shape):
    with pytest.raises(ValueError, match="z must have shape"):
        gen.mapping(torch.zeros(shape))


@pytest.mark.parametrize("shape", [(4, W_DIM + 1), (W_DIM,), (2, 2, W_DIM)])
@pytest.mark.parametrize(
    "method", ["synthesis", "render", "identity_params", "nuisance_params", "face_params"]
)
def test_bad_w_shape_raises(gen, shape, method):
    with pytest.raises(ValueError, match="w must have shape"):
        getattr(gen, method)(torch.zeros(shape))


def test_w_dim_beyond_the_renderer_inputs_is_refused():
    from brownface.errors import UserError

    with pytest.raises(UserError, match="world.w_dim: must be <= identity_dim"):
        WorldGenerator(seed=0, w_dim=40)
