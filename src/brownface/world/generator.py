"""The demo world's "GAN": a fixed random mapping z -> w and a synthesis w -> face image.

It implements the generator interface every stage uses (``brownface.models.generator``:
``mapping``, ``synthesis``, ``z_dim``, ``w_dim``, ``w_avg``, ``img_resolution``, ``num_ws``,
``fr_crop``), with the face renderer as its image head, and is the generator kind ``world``
(``spec_options`` and ``build`` at the end of this module). Like a
real StyleGAN, the mapping is a normalised MLP with leaky ReLUs and the synthesis entangles
factors: a fixed random head maps every latent direction to identity *and* nuisance (pose,
light, expression, scene) parameters, one output per renderer input, at least as many as w
has dimensions. Unlike a real GAN it has an oracle: ``identity_params`` and
``nuisance_params`` give the ground truth behind each latent, for tests and metrics.

Two choices keep GAN inversion (``brownface.covariates.projection``) well posed, so that
projected Multi-PIE latents carry their expression and light as real projections do:

* the mapping ends in a fixed whitening (zero mean, identity covariance of w over z ~ N(0, I)).
  The leaky-ReLU MLP alone gives a W whose covariance spans 200:1, and Adam from w_avg then
  stalls in the thin directions;
* the head is a rotation plus a mild non-linearity, o = Q x + 0.3 MLP(x) with Q orthonormal,
  so every parameter combination (a Multi-PIE subject under flash 01, screaming) is reached by
  some w, while each latent direction still moves many parameters.

A training set (``training_identities`` > 0, the config's ``world.training_set``) makes it
reproduce some people, as GANs reproduce some of their training faces: a face whose identity
vector comes within the capture cosine of a training identity is drawn as that person, for a
``training_share`` of random latents; ``training_identity`` is the ground truth of leakage.

Everything is determined by ``seed`` (the config's ``world.seed``). The crop to an FR network's
input maps the mean landmarks of 512 frontal, neutral world faces onto the ArcFace template.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from brownface.errors import UserError
from brownface.models.generator import GeneratorBase, GeneratorSpec
from brownface.seeding import torch_generator
from brownface.world.renderer import EXPRESSIONS, FaceParams, FaceRenderer

# yaw, pitch, light azimuth, strength, ambient; expressions; background RGB, its gradient,
# light tint, hair phase. With the identity vector, one renderer input per latent dimension.
N_NUISANCE = 5 + len(EXPRESSIONS) + 6
W_AVG_SAMPLES = 10_000
CROP_SAMPLES = 512  # frontal faces whose mean landmarks define the crop to an FR network
HIDDEN_GAIN = 0.3  # weight of the head's non-linear path against its rotation
#: The world keys that define its generator (the kind's options).
GENERATOR_KEYS = ("seed", "resolution", "identity_dim", "z_dim", "w_dim")
#: The keys of ``world.training_set`` that shape the generator (its options' names).
TRAINING_SET_OPTIONS = {"identities": "training_identities", "share": "training_share"}
CAPTURE_WIDTH = 0.02  # cosine over which a face slides from its own identity to a training one


def training_identities(seed: int, k: int, identity_dim: int) -> torch.Tensor:
    """The world's ``k`` training identities [k, identity_dim] (standard normal, own stream):
    the people its generator reproduces and ``world/training_faces`` photographs."""
    return torch.randn(k, identity_dim, generator=torch_generator(seed, "world/training_set"))


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class WorldGenerator(GeneratorBase):
    """Generator of the procedural face world (no trainable parameters; all buffers)."""

    num_ws = 1  # one w for the whole synthesis

    def __init__(
        self,
        seed: int = 0,  # world.seed: fixes mapping, synthesis head and renderer
        z_dim: int = 32,  # input latent width
        w_dim: int = 32,  # intermediate latent width
        identity_dim: int = 16,  # renderer identity vector length
        resolution: int = 64,  # output image size
        mapping_layers: int = 4,  # depth of the z -> w MLP
        head_hidden: int = 64,  # hidden width of the w -> parameters head
        training_identities: int = 0,  # identities the "GAN" reproduces (world.training_set)
        training_share: float = 0.0,  # fraction of latents (truncation 1) that reproduce one
        spec: GeneratorSpec | None = None,  # the spec it was loaded from; None = its own options
    ) -> None:
        super().__init__()
        if w_dim > identity_dim + N_NUISANCE:
            raise UserError(
                f"config world.w_dim: must be <= identity_dim + {N_NUISANCE} = "
                f"{identity_dim + N_NUISANCE} (each latent direction needs a renderer input "
                f"to move), got {w_dim}"
            )
        self.seed, self.z_dim, self.w_dim = seed, z_dim, w_dim
        self.identity_dim, self.img_resolution = identity_dim, resolution
        if training_identities > 0 and not 0.0 < training_share < 1.0:
            raise UserError(
                "config world.training_set.share: expected a fraction in (0, 1) when "
                f"identities > 0, got {training_share}"
            )
        self.training_identities = training_identities
        self.training_share = float(training_share) if training_identities else 0.0
        self.spec = spec or GeneratorSpec(kind="world", options=self.options())
        self.renderer = FaceRenderer(resolution=resolution, identity_dim=identity_dim, seed=seed)
        gen = torch_generator(seed, "world/generator")
        gain = math.sqrt(2)  # He gain for leaky ReLU, as in StyleGAN's equalised layers
        for i in range(mapping_layers):
            fan_in = z_dim if i == 0 else w_dim
            self.register_buffer(
                f"fc{i}_w", torch.randn(w_dim, fan_in, generator=gen) * gain / math.sqrt(fan_in)
            )
            self.register_buffer(f"fc{i}_b", 0.1 * torch.randn(w_dim, generator=gen))
        self.mapping_layers = mapping_layers
        n_out = identity_dim + N_NUISANCE
        self.register_buffer(
            "head0_w", torch.randn(head_hidden, w_dim, generator=gen) * gain / math.sqrt(w_dim)
        )
        self.register_buffer("head0_b", 0.5 * torch.randn(head_hidden, generator=gen))
        self.register_buffer(
            "head1_w",
            torch.randn(n_out, head_hidden, generator=gen) * HIDDEN_GAIN / math.sqrt(head_hidden),
        )
        q, r = torch.linalg.qr(torch.randn(n_out, w_dim, generator=gen, dtype=torch.float64))
        self.register_buffer("skip_w", (q * torch.sign(torch.diagonal(r))).float())
        # Statistics over a fixed sample: the whitening, w_avg, and the head's standardisation.
        z = torch.randn(W_AVG_SAMPLES, z_dim, generator=torch_generator(seed, "world/w_avg"))
        mlp = self._mlp(z).double()
        mean = mlp.mean(0)
        eigval, eigvec = torch.linalg.eigh(torch.cov(mlp.T))
        self.register_buffer("white_mean", mean.float())
        self.register_buffer("white_mat", (eigvec * eigval.rsqrt() @ eigvec.T).float())
        w = self.mapping(z, truncation_psi=1.0, _raw=True)
        self.register_buffer("w_avg", w.mean(0))
        self.register_buffer("w_std", w.std(0))
        raw = self._head_raw(w)
        self.register_buffer("out_mean", raw.mean(0))
        self.register_buffer("out_std", raw.std(0))
        self._init_training_set(training_identities, w)
        ident = torch.randn(
            CROP_SAMPLES, identity_dim, generator=torch_generator(seed, "world/crop")
        )
        with torch.no_grad():
            landmarks = self.renderer.landmarks(FaceParams.neutral(ident))
        self.register_buffer("crop_landmarks", landmarks.mean(0))
        self.requires_grad_(False)

    # -- the generator interface ----------------------------------------------------------
    def mapping(
        self, z: torch.Tensor, truncation_psi: float = 1.0, _raw: bool = False
    ) -> torch.Tensor:
        """z [B, z_dim] -> w [B, w_dim]; truncation w_avg + psi (w - w_avg)."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [B, {self.z_dim}], got {list(z.shape)}")
        x = (self._mlp(z) - self.white_mean) @ self.white_mat
        if _raw or truncation_psi == 1.0:
            return x
        return self.w_avg + truncation_psi * (x - self.w_avg)

    def _mlp(self, z: torch.Tensor) -> torch.Tensor:
        x = _normalize_2nd_moment(z)
        for i in range(self.mapping_layers):
            x = F.leaky_relu(x @ getattr(self, f"fc{i}_w").T + getattr(self, f"fc{i}_b"), 0.2)
        return x

    def synthesis(self, w: torch.Tensor) -> torch.Tensor:
        """w [B, w_dim] (or [B, 1, w_dim]) -> images [B, 3, R, R] in [-1, 1]."""
        return self.render(self.check_w(w))[0]

    def frame_landmarks(self) -> torch.Tensor:
        """The mean landmarks [5, 2] of frontal, neutral world faces (the generator's framing)."""
        return self.crop_landmarks

    def render(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """w -> (images, 5 landmarks in pixels); the landmarks are the world's ground truth."""
        return self.renderer(self.face_params(w))

    # -- the oracle -----------------------------------------------------------------------
    def _head_raw(self, w: torch.Tensor) -> torch.Tensor:
        x = (w - self.w_avg) / self.w_std if hasattr(self, "w_std") else w
        hidden = F.leaky_relu(x @ self.head0_w.T + self.head0_b, 0.2)
        return hidden @ self.head1_w.T + x @ self.skip_w.T

    def _head(self, w: torch.Tensor) -> torch.Tensor:
        if w.ndim != 2 or w.shape[1] != self.w_dim:
            raise ValueError(f"w must have shape [B, {self.w_dim}], got {list(w.shape)}")
        return (self._head_raw(w) - self.out_mean) / self.out_std

    # -- the training set: faces the "GAN" reproduces ---------------------------------------
    def _init_training_set(self, k: int, w: torch.Tensor) -> None:
        """Draw ``k`` training identities and the capture cosine that a ``training_share`` of
        the fixed latent sample (truncation 1) passes."""
        self.register_buffer("training_set", training_identities(self.seed, k, self.identity_dim))
        capture = 1.0
        if k:
            nearest = self._nearest_training(self._head(w)[:, : self.identity_dim])[0]
            capture = float(torch.quantile(nearest.double(), 1.0 - self.training_share))
        self.register_buffer("capture_cosine", torch.tensor(capture))

    def _nearest_training(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine to the nearest training identity and its index, per identity vector."""
        t = self.training_set.to(u.dtype)
        cos = F.normalize(u, dim=1) @ F.normalize(t, dim=1).T
        return cos.max(dim=1)

    def _identity(self, out: torch.Tensor) -> torch.Tensor:
        """The rendered identity: the head's own, pulled onto the nearest training identity
        when their cosine passes ``capture_cosine``. As a GAN reproduces some of its training
        faces, a ``training_share`` of random latents then draws a training person. The step
        is smooth (CAPTURE_WIDTH wide), so near its edge gradients lead out; deep inside, the
        face is the training person whatever w does to its identity, so a capture is a sink
        for a sampler that moves identities by the gradients of their embeddings."""
        u = out[:, : self.identity_dim]
        if not self.training_set.shape[0]:
            return u
        cos, k = self._nearest_training(u)
        a = torch.sigmoid((cos - self.capture_cosine.to(u.dtype)) / CAPTURE_WIDTH)[:, None]
        return u + a * (self.training_set.to(u.dtype)[k] - u)

    def training_identity(self, w: torch.Tensor) -> torch.Tensor:
        """Ground truth of leakage: the index of the training identity each latent's face is
        (past the middle of the capture step), or -1 for a face of its own."""
        u = self._head(w)[:, : self.identity_dim]
        if not self.training_set.shape[0]:
            return torch.full((w.shape[0],), -1, dtype=torch.long, device=w.device)
        cos, k = self._nearest_training(u)
        return torch.where(cos > self.capture_cosine.to(u.dtype), k, -1)

    def identity_params(self, w: torch.Tensor) -> torch.Tensor:
        """Ground-truth identity vector [B, identity_dim] behind each latent."""
        return self._identity(self._head(w))

    def nuisance_params(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """Ground-truth yaw, pitch, light azimuth/strength, ambient (degrees / [0, 1]),
        expression intensities [B, 5] and the scene (background, light tint, hair phase)."""
        return self._nuisance(self._head(w)[:, self.identity_dim :])

    @staticmethod
    def _nuisance(o: torch.Tensor) -> dict[str, torch.Tensor]:
        # Evaluated in float64: per-face values must not depend on their position in a batch
        # (SIMD and scalar tanh/sigmoid round differently in the last bit).
        dtype = o.dtype
        return {k: v.to(dtype) for k, v in WorldGenerator._nuisance64(o.double()).items()}

    @staticmethod
    def _nuisance64(o: torch.Tensor) -> dict[str, torch.Tensor]:
        # Mostly near-frontal faces with mild expressions, as in FFHQ; the tails reach profile
        # and full expressions (an expression passes 0.5 for o > 0.75, about one face in five).
        return dict(
            yaw=90 * torch.tanh(0.4 * o[:, 0]),
            pitch=30 * torch.tanh(0.4 * o[:, 1]),
            light_azimuth=90 * torch.tanh(0.6 * o[:, 2]),
            light_strength=0.15 + 0.8 * torch.sigmoid(o[:, 3]),
            ambient=0.25 + 0.5 * torch.sigmoid(o[:, 4]),
            expression=torch.sigmoid(2.0 * o[:, 5:10] - 1.5),
            background=0.3 + 0.5 * torch.sigmoid(o[:, 10:13]),
            background_gradient=0.15 * torch.tanh(o[:, 13]),
            light_tint=torch.tanh(0.7 * o[:, 14]),
            hair_phase=torch.pi * torch.tanh(o[:, 15]),
        )

    def face_params(self, w: torch.Tensor) -> FaceParams:
        out = self._head(w)
        identity = self._identity(out)
        return FaceParams.neutral(identity, **self._nuisance(out[:, self.identity_dim :]))

    def options(self) -> dict:
        """How this generator was built, as data (the ``world`` kind's spec options)."""
        return dict(
            seed=self.seed,
            resolution=self.img_resolution,
            identity_dim=self.identity_dim,
            z_dim=self.z_dim,
            w_dim=self.w_dim,
            **(
                dict(
                    training_identities=self.training_identities,
                    training_share=self.training_share,
                )
                if self.training_identities
                else {}
            ),
        )


# ---------------------------------------------------------------------------------------------
# The generator kind "world" (brownface.models.generator.GENERATOR_KINDS).


def spec_options(config: dict) -> dict:
    """The world keys its generator depends on (not its data sets' keys); a world without a
    training set keeps the options (and so the spec) it had before training sets existed."""
    world = config["world"]
    options = {key: world[key] for key in GENERATOR_KEYS}
    training = world.get("training_set", {})
    if training.get("identities", 0):
        options.update({TRAINING_SET_OPTIONS[k]: training[k] for k in TRAINING_SET_OPTIONS})
    return options


def build(spec: GeneratorSpec) -> WorldGenerator:
    """The world generator of a spec; it has no checkpoint (everything follows from world.*)."""
    if spec.checkpoint is not None:
        raise UserError(
            "config generator.checkpoint: the world generator is built from world.* and "
            f"reads no checkpoint, got {spec.checkpoint!r}"
        )
    unknown = sorted(set(spec.options) - set(GENERATOR_KEYS) - set(TRAINING_SET_OPTIONS.values()))
    if unknown:
        raise UserError(f"world generator spec: unknown option {unknown[0]!r}")
    return WorldGenerator(**spec.options, spec=spec)
