"""The world generator's training set: faces it reproduces more often than chance, the ground
truth of leakage, and the FFHQ-like tree of those faces."""

import numpy as np
import pytest
import torch

from brownface.errors import UserError
from brownface.world.generator import CAPTURE_WIDTH, WorldGenerator, spec_options
from brownface.world.training_faces import build_training_faces, training_identity_of

K, SHARE = 30, 0.1


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def gen():
    return WorldGenerator(seed=0, training_identities=K, training_share=SHARE)


def latents(g: WorldGenerator, n: int, seed: int, psi: float = 1.0) -> torch.Tensor:
    z = torch.randn(n, g.z_dim, generator=torch.Generator().manual_seed(seed))
    return g.mapping(z, truncation_psi=psi)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


def test_a_share_of_random_latents_draws_a_training_identity(gen):
    w = latents(gen, 8000, seed=5)  # not the calibration sample
    truth = gen.training_identity(w)
    share = float((truth >= 0).float().mean())
    assert abs(share - SHARE) < 0.015  # 3 sigma of a binomial share of 8000
    # Most training identities are reproduced, each by a few latents, as a GAN repeats faces.
    assert len(set(truth[truth >= 0].tolist())) >= 0.9 * K
    # Truncation moves latents towards w_avg but keeps the share in the same range.
    truncated = float((gen.training_identity(latents(gen, 8000, 5, psi=0.7)) >= 0).float().mean())
    assert 0.5 * SHARE < truncated < 2 * SHARE


def test_a_captured_face_is_its_training_identity_and_the_others_are_their_own(gen):
    w = latents(gen, 8000, seed=6)
    truth = gen.training_identity(w)
    own = gen._head(w)[:, : gen.identity_dim]  # the head's identity before capture
    rendered = gen.identity_params(w)
    cos, nearest = gen._nearest_training(own)
    margin = (cos - gen.capture_cosine).abs() > 4 * CAPTURE_WIDTH  # off the smooth step
    captured, free = margin & (truth >= 0), margin & (truth < 0)
    assert captured.sum() > 100 and free.sum() > 5000
    # Well inside the step the face is the training person (identity vector and all) ...
    t = gen.training_set[truth[captured]]
    assert torch.all(cosine(rendered[captured], t) > 0.99)
    assert float((rendered[captured] - t).norm(dim=1).max()) < 0.1 * float(t.norm(dim=1).min())
    # ... and outside it the face is the head's own, no nearer to any training person.
    assert torch.allclose(rendered[free], own[free], atol=0.02 * own.abs().max().item())
    # Truth agrees with what is drawn: the captured are the ones nearest their training person.
    assert torch.all(cosine(rendered[captured], t) > cos[free].max())


def test_gradients_lead_out_of_a_capture(gen):
    """Langevin moves a captured identity away from a repeller only through gradients."""
    w = latents(gen, 4000, seed=7)
    truth = gen.training_identity(w)
    cos = gen._nearest_training(gen._head(w)[:, : gen.identity_dim])[0]
    inside = (truth >= 0) & (cos < gen.capture_cosine + CAPTURE_WIDTH)
    x = w[inside][:8].clone().requires_grad_(True)
    ident = gen.identity_params(x)
    target = gen.training_set[gen.training_identity(x.detach())]
    cosine(ident, target).sum().backward()
    assert torch.all(x.grad.norm(dim=1) > 1e-3)


def test_no_training_set_keeps_the_generator_and_its_spec():
    plain, empty = WorldGenerator(seed=0), WorldGenerator(seed=0, training_identities=0)
    w = latents(plain, 64, seed=8)
    assert torch.equal(plain.synthesis(w), empty.synthesis(w))
    assert torch.equal(plain.identity_params(w), plain._head(w)[:, :16])
    assert plain.training_identity(w).eq(-1).all()
    assert "training_identities" not in plain.spec.options
    world = {"seed": 0, "resolution": 64, "identity_dim": 16, "z_dim": 32, "w_dim": 32}
    assert (
        spec_options({"world": {**world, "training_set": {"identities": 0, "share": 0.1}}}) == world
    )
    options = spec_options({"world": {**world, "training_set": {"identities": 5, "share": 0.2}}})
    assert options == {**world, "training_identities": 5, "training_share": 0.2}


def test_a_share_outside_zero_one_is_refused():
    with pytest.raises(UserError, match="training_set.share"):
        WorldGenerator(seed=0, training_identities=3, training_share=0.0)


def test_the_training_faces_are_the_training_identities_in_the_generator_frame(gen, tmp_path):
    n = build_training_faces(
        gen.renderer, 0, tmp_path / "faces", identities=4, images_per_identity=2
    )
    files = sorted(
        p.relative_to(tmp_path / "faces").as_posix() for p in (tmp_path / "faces").rglob("*.png")
    )
    assert n == 8 and files == [f"{k:03d}/{j:02d}.png" for k in range(4) for j in range(2)]
    assert [training_identity_of(f) for f in files] == [0, 0, 1, 1, 2, 2, 3, 3]
    from brownface.evaluate.binfile import decode_image

    image = decode_image((tmp_path / "faces" / files[0]).read_bytes(), files[0])
    assert image.shape == (gen.img_resolution, gen.img_resolution, 3)
    # The same identities as the generator's (the first 4 of its 30: one seeded stream).
    from brownface.world.generator import training_identities

    assert torch.equal(training_identities(0, 30, 16)[:4], training_identities(0, 4, 16))
    assert torch.equal(training_identities(0, 30, 16), gen.training_set)
    again = build_training_faces(
        gen.renderer, 0, tmp_path / "again", identities=4, images_per_identity=2
    )
    assert again == n and all(
        (tmp_path / "faces" / f).read_bytes() == (tmp_path / "again" / f).read_bytes()
        for f in files
    )
    assert np.asarray(image).std() > 10  # a face, not a blank frame


class OracleEmbedder(torch.nn.Module):
    """The ideal FR network of the world: a face's embedding is its true identity vector."""

    def __init__(self, generator: WorldGenerator) -> None:
        super().__init__()
        self.generator, self.w_dim, self.z_dim = generator, generator.w_dim, generator.z_dim
        self.w_avg = generator.w_avg

    def mapping(self, z, truncation_psi=1.0):
        return self.generator.mapping(z, truncation_psi=truncation_psi)

    def forward(self, w):
        return self.generator.identity_params(w)


def test_langevin_that_avoids_the_training_faces_leaks_less_than_random():
    """On a world whose generator reproduces 20 people for 30% of its latents, under the ideal
    FR: random identities leak (by truth and by the measure); Langevin repelled by the
    training faces' embeddings leaks a fraction of that, by both."""
    from brownface.leakage.measure import measure_leakage
    from brownface.sampling.langevin import IdentityParams, langevin, random_latents

    g = WorldGenerator(seed=0, training_identities=20, training_share=0.3)
    oracle = OracleEmbedder(g).eval()
    real = torch.nn.functional.normalize(g.training_set, dim=1)  # the training faces' means
    people = torch.nn.functional.normalize(oracle(latents(g, 2000, seed=9)), dim=1)
    impostors = (people[0::2] * people[1::2]).sum(1).double().numpy()

    def leaked(w):
        e = torch.nn.functional.normalize(oracle(w), dim=1)
        truth = (g.training_identity(w) >= 0).numpy()
        result = measure_leakage(e, real, impostors, fars=[1e-2], k=0, truly_leaked=truth)
        return result.truth["leaked"], result.leaked["0.01"], result

    start = random_latents(oracle, 60, 0.7, seed=0)
    params = IdentityParams(algorithm="langevin", n=60, iterations=30, checkpoint_every=0)
    avoiding = langevin(oracle, params, seed=0, truncation_psi=0.7, avoid=real)
    truth_random, measured_random, first = leaked(start)
    truth_avoid, measured_avoid, _ = leaked(avoiding.w)
    assert truth_random >= 0.15 and measured_random >= 0.15
    assert truth_avoid <= truth_random / 4 and measured_avoid <= measured_random / 4
    # The ideal FR catches every true leak; at FAR 1e-2 it also calls some near-misses (faces
    # of their own just outside a capture), so its precision is below 1.
    agreement = first.truth["agreement"]["0.01"]
    assert agreement["recall"] == 1.0 and 0.5 <= agreement["precision"] < 1.0


def project_identities(g: WorldGenerator, targets: torch.Tensor, steps: int = 300) -> torch.Tensor:
    """Latents whose drawn identity is each target identity vector (Adam from w_avg)."""
    w = g.w_avg.expand(targets.shape[0], -1).clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        (g.identity_params(w) - targets).square().sum().backward()
        opt.step()
    return w.detach()


def test_a_dataset_of_training_people_is_all_leaked_by_truth_and_a_disjoint_one_none(gen):
    """Latents projected onto the training identities are leaked by the truth, every one;
    latents projected onto other people (drawn away from every training identity) are not."""
    trained = project_identities(gen, gen.training_set[:12])
    person = gen.training_identity(trained)
    assert person.ge(0).all()  # 100% leaked by truth
    # Most reach their own target; a projection can fall into another person's capture on
    # the way (a capture is a sink), and is then that person.
    assert int((person == torch.arange(12)).sum()) >= 10
    others = torch.randn(200, 16, generator=torch.Generator().manual_seed(11))
    far = gen._nearest_training(others)[0] < gen.capture_cosine - 0.15
    disjoint = project_identities(gen, others[far][:12])
    assert far.sum() >= 12 and gen.training_identity(disjoint).eq(-1).all()
    assert torch.allclose(gen.identity_params(disjoint), others[far][:12], atol=0.05)
