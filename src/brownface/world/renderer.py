"""A batched, differentiable renderer of cartoon faces with known identity and nuisance.

The demo world needs a face "camera" whose every factor is known: identity, head pose,
illumination and expression. Faces are drawn analytically with soft shapes (sigmoids of
signed distances), so every pixel is a smooth function of every parameter and gradients flow
to all of them.

Geometry. The head is an ellipsoid with radii (a, b, c) in a head frame (X right, Y down,
Z towards the camera). Each pixel casts an orthographic ray; its hit point (X, Y, Z) on the
rotated ellipsoid carries the face's painted features (eyes, brows, mouth, hairline, ears), so
features shift with depth, foreshorten as the surface turns away and disappear behind the head
at profile. The nose protrudes from the surface and is drawn in image space at its projected
tip. Shading is Lambertian on the ellipsoid normal plus ambient light.

Framing. As in an FFHQ-aligned crop, the frontal face is framed by the FFHQ rule applied to its
own eyes and mouth corners: half-size max(2 |eye-to-eye|, 1.8 |eye-to-mouth|), centre
eye_avg + 0.1 eye-to-mouth. Frontal eyes therefore sit at (nearly) fixed pixels for every
identity. A final in-plane similarity (roll, scale, shift) un-aligns faces for Multi-PIE.

Conventions: images NCHW, RGB in [-1, 1]. Yaw > 0 turns the nose towards the image's right;
pitch > 0 tilts the face up; light azimuth < 0 lights from the image's left. Landmarks are the
5 ArcFace points (image-left eye, image-right eye, nose tip, image-left and image-right mouth
corner) in pixels with pixel centres at integer coordinates (the OpenCV/skimage convention).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import nn

from brownface.seeding import torch_generator

EXPRESSIONS = ("smile", "surprise", "squint", "disgust", "scream")

# Identity attributes: name, low, high. A fixed seeded mixing matrix maps the identity vector
# (standard normal) to one unit-variance score per attribute; sigmoid(score) interpolates low..high.
IDENTITY_ATTRIBUTES: tuple[tuple[str, float, float], ...] = (
    ("head_width", 0.80, 1.00),  # a, head-frame units
    ("head_height", 1.08, 1.30),  # b
    ("jaw", 0.00, 0.45),  # narrowing of the lower face
    ("skin_tone", 0.0, 1.0),  # dark .. light
    ("skin_red", -1.0, 1.0),
    ("skin_yellow", -1.0, 1.0),
    ("hair_light", 0.0, 1.0),  # black .. blond
    ("hair_red", 0.0, 1.0),
    ("hair_grey", 0.0, 1.0),
    ("hairline", -0.95, -0.55),  # Y of the hairline at the midline
    ("hair_volume", 0.02, 0.22),
    ("hair_length", 0.0, 1.0),  # short .. shoulder
    ("eye_spacing", 0.30, 0.40),  # X of the eye centres
    ("eye_size", 0.085, 0.125),  # half-width of the eye opening
    ("eye_height", -0.28, -0.12),  # Y of the eye centres
    ("iris_hue", 0.0, 1.0),  # brown .. blue/green
    ("iris_dark", 0.0, 1.0),
    ("brow_thickness", 0.022, 0.055),
    ("brow_height", 0.13, 0.21),  # above the eye centre
    ("brow_slope", -0.25, 0.25),
    ("nose_length", 0.30, 0.46),  # eye line to nose tip
    ("nose_width", 0.09, 0.15),
    ("nose_protrusion", 0.10, 0.22),
    ("mouth_width", 0.22, 0.32),  # half-width
    ("mouth_drop", 0.16, 0.26),  # nose tip to mouth line
    ("lip_thickness", 0.025, 0.05),
    ("lip_red", 0.0, 1.0),
    ("lip_dark", 0.0, 1.0),
    ("ear_size", 0.8, 1.25),
    ("hair_part", -0.3, 0.3),  # tilt of the hairline
    ("beard", -4.0, 1.0),  # beard and moustache opacity (clipped at 0: most faces have none)
)
HEAD_DEPTH = 1.0  # c: the ellipsoid's depth radius
BACKGROUND = (0.55, 0.57, 0.6)  # default backdrop colour


@dataclass
class FaceParams:
    """Everything the renderer draws; each field is batched along dim 0.

    identity [B, identity_dim] standard normal; yaw, pitch, light_azimuth in degrees [B];
    light_strength, ambient in [0, 1] [B]; expression [B, 5] in [0, 1] (EXPRESSIONS order);
    roll (degrees), scale, shift [B, 2] (fraction of the half image) for un-aligned framing;
    scene: background RGB [B, 3] in [0, 1], its vertical gradient [B], light_tint [B] in [-1, 1]
    (warm .. cool light) and hair_phase [B] (radians, where the hair's strands fall).
    """

    identity: torch.Tensor
    yaw: torch.Tensor
    pitch: torch.Tensor
    light_azimuth: torch.Tensor
    light_strength: torch.Tensor
    ambient: torch.Tensor
    expression: torch.Tensor
    roll: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    background: torch.Tensor
    background_gradient: torch.Tensor
    light_tint: torch.Tensor
    hair_phase: torch.Tensor

    @classmethod
    def neutral(cls, identity: torch.Tensor, **overrides: torch.Tensor) -> FaceParams:
        """Frontal, evenly lit, neutral, aligned faces for the given identities."""
        n = identity.shape[0]

        def full(value: float, *shape: int) -> torch.Tensor:  # a fresh tensor per field
            return identity.new_full((n, *shape), value)

        values = dict(
            identity=identity,
            yaw=full(0.0),
            pitch=full(0.0),
            light_azimuth=full(0.0),
            light_strength=full(0.55),
            ambient=full(0.45),
            expression=full(0.0, len(EXPRESSIONS)),
            roll=full(0.0),
            scale=full(1.0),
            shift=full(0.0, 2),
            background=identity.new_tensor(BACKGROUND).expand(n, 3).clone(),
            background_gradient=full(0.08),
            light_tint=full(0.0),
            hair_phase=full(0.0),
        )
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: torch.Tensor) -> FaceParams:
        return replace(self, **changes)

    def to(self, device: torch.device | str) -> FaceParams:
        return FaceParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __getitem__(self, index) -> FaceParams:
        return FaceParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def cat(parts: list[FaceParams]) -> FaceParams:
        return FaceParams(
            **{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(FaceParams)}
        )


def _exact(fn, x: torch.Tensor) -> torch.Tensor:
    """A transcendental function of per-face values, evaluated in float64.

    SIMD and scalar kernels round sin/cos/sigmoid differently in the last bit, and which one a
    value meets depends on its position in the batch; in float64 both round to the same
    float32, so a face renders identically whatever batch it is in.
    """
    return fn(x.double()).to(x.dtype)


def _soft(x: torch.Tensor) -> torch.Tensor:
    """A soft step 0 -> 1 across x = 0. Callers scale distances by ``ipx`` = 1.7 / pixel size,
    so edges are about one output pixel wide."""
    return torch.sigmoid(x)


def _over(col: list, mask: torch.Tensor, colour: list) -> list:
    """Composite ``colour`` over ``col`` with coverage ``mask``, channel by channel.

    Colours are lists of 3 tensors ([B, 1, 1] or [B, R, R]); keeping channels apart avoids
    slow channel broadcasts on CPU.
    """
    return [torch.lerp(c, k, mask) for c, k in zip(col, colour)]


def _rgb(r, g, b) -> list:
    """Per-face colour: 3 tensors [B, 1, 1]; channels may be tensors [B] or plain floats."""
    ref = next(c for c in (r, g, b) if isinstance(c, torch.Tensor))
    return [
        (c if isinstance(c, torch.Tensor) else torch.full_like(ref, c))[:, None, None]
        for c in (r, g, b)
    ]


def _scale(colour: list, factor) -> list:
    return [c * factor for c in colour]


def _lit(colour: list, shade, light_rgb: list) -> list:
    """A colour under light of intensity ``shade`` and per-channel tint ``light_rgb``."""
    return [c * shade * k for c, k in zip(colour, light_rgb)]


class FaceRenderer(nn.Module):
    """Renders ``FaceParams`` to images [B, 3, R, R] in [-1, 1] and 5 landmarks [B, 5, 2]."""

    def __init__(
        self,
        resolution: int = 64,  # output width and height in pixels
        identity_dim: int = 16,  # length of the identity vector
        seed: int = 0,  # fixes the identity -> attribute mixing
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.identity_dim = identity_dim
        gen = torch_generator(seed, "world/renderer")
        mix = torch.randn(identity_dim, len(IDENTITY_ATTRIBUTES), generator=gen)
        # Unit-variance score per attribute for standard-normal identities.
        self.register_buffer("mix", mix / mix.norm(dim=0, keepdim=True))
        lows = torch.tensor([lo for _, lo, _ in IDENTITY_ATTRIBUTES])
        highs = torch.tensor([hi for _, _, hi in IDENTITY_ATTRIBUTES])
        self.register_buffer("attr_low", lows)
        self.register_buffer("attr_high", highs)
        self.register_buffer("grid", self._grid(resolution))

    @staticmethod
    def _grid(resolution: int) -> torch.Tensor:
        """Pixel centres in normalised coordinates [-1, 1]."""
        return (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2 - 1

    # ------------------------------------------------------------------------------------
    def attributes(self, identity: torch.Tensor) -> dict[str, torch.Tensor]:
        """Identity vector [B, identity_dim] -> named attribute values [B] (smooth, bounded)."""
        if identity.ndim != 2 or identity.shape[1] != self.identity_dim:
            raise ValueError(
                f"identity must have shape [B, {self.identity_dim}], got {list(identity.shape)}"
            )
        score = _exact(torch.sigmoid, 1.8 * (identity.double() @ self.mix.double())).to(
            identity.dtype
        )
        values = self.attr_low + (self.attr_high - self.attr_low) * score
        return {name: values[:, i] for i, (name, _, _) in enumerate(IDENTITY_ATTRIBUTES)}

    @staticmethod
    def _rotation(yaw: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
        """R = R_x(pitch) R_y(yaw), mapping head-frame vectors to camera-frame ones [B, 3, 3]."""
        ya, pi = torch.deg2rad(yaw), torch.deg2rad(pitch)
        cy, sy = _exact(torch.cos, ya), _exact(torch.sin, ya)
        cp, sp = _exact(torch.cos, pi), _exact(torch.sin, pi)
        zero, one = torch.zeros_like(ya), torch.ones_like(ya)
        r_y = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
        r_x = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).view(-1, 3, 3)
        return r_x @ r_y

    @staticmethod
    def _expression_geometry(attr: dict, expr: torch.Tensor) -> dict[str, torch.Tensor]:
        """How expressions move eyes, brows, cheeks and mouth (per face scalars).

        Each expression changes a large part of the face, as real ones do (a smile widens and
        opens the mouth, shows the teeth, raises the cheeks and narrows the eyes), so that it
        is visible at the generator's resolution and a pixel-loss projection recovers it.
        """
        smile, surprise, squint, disgust, scream = expr.unbind(1)
        geo = {}
        geo["eye_open"] = (
            0.55
            * (1 + 0.9 * surprise - 0.9 * squint - 0.5 * disgust - 0.5 * smile)
            * (1 - 0.6 * scream)
        ).clamp(min=0.06)
        geo["brow_lift"] = 0.18 * surprise + 0.04 * scream - 0.1 * disgust - 0.14 * squint
        geo["brow_tilt"] = (
            attr["brow_slope"] - 0.6 * disgust + 0.3 * surprise - 0.3 * scream - 0.2 * squint
        )
        geo["mouth_width"] = attr["mouth_width"] * (
            1 + 0.5 * smile - 0.3 * surprise + 0.1 * disgust + 0.25 * scream
        )
        geo["corner_lift"] = 0.2 * smile - 0.14 * disgust - 0.04 * scream
        geo["mouth_open"] = 0.012 + 0.16 * smile + 0.3 * surprise + 0.45 * scream + 0.05 * disgust
        geo["upper_lip_raise"] = 0.12 * disgust
        geo["teeth"] = (smile + 0.7 * scream + 0.8 * disgust).clamp(max=1.0)
        geo["cheek_raise"] = (smile + squint + 0.5 * scream + 0.8 * disgust).clamp(max=1.0)
        geo["wrinkle"] = (disgust + 0.5 * scream + 0.8 * squint).clamp(max=1.0)
        geo["crows_feet"] = (squint + 0.6 * scream + 0.4 * smile).clamp(max=1.0)
        geo["forehead"] = surprise
        geo["expression"] = expr
        return geo

    def framing(self, attr: dict, geo: dict, rot: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The FFHQ framing of the posed face, from its own projected eyes and mouth corners.

        As FFHQ aligns every photograph by its landmarks, the crop follows the face: centre
        c = eye_avg + 0.1 eye_to_mouth, half-size s = max(2 |eye_to_eye|, 1.8 |eye_to_mouth|),
        and the rotation of x = eye_to_eye - rot90(eye_to_mouth). Returns (cx, cy, s, cos, sin).
        The landmarks are those of the neutral expression.
        """
        # Framed on the neutral face, so that expressions act locally (an edit along a smile
        # direction changes the mouth, not the crop).
        neutral = self._expression_geometry(attr, torch.zeros_like(geo["expression"]))
        pts = self._camera_points(attr, neutral, rot)
        eye_avg = 0.5 * (pts[:, 0] + pts[:, 1])
        eye_to_eye = pts[:, 1] - pts[:, 0]
        eye_to_mouth = 0.5 * (pts[:, 3] + pts[:, 4]) - eye_avg
        x = eye_to_eye + torch.stack([eye_to_mouth[:, 1], -eye_to_mouth[:, 0]], 1)
        x = x / x.norm(dim=1, keepdim=True)
        s = torch.maximum(2 * eye_to_eye.norm(dim=1), 1.8 * eye_to_mouth.norm(dim=1))
        centre = eye_avg + 0.1 * eye_to_mouth
        return centre[:, 0], centre[:, 1], s, x[:, 0], x[:, 1]

    # ------------------------------------------------------------------------------------
    def forward(
        self, p: FaceParams, resolution: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Render a batch. Returns images [B, 3, R, R] in [-1, 1] and landmarks [B, 5, 2].

        ``resolution`` overrides the renderer's own (the face is the same, sampled finer).
        """
        attr = self.attributes(p.identity)
        geo = self._expression_geometry(attr, p.expression)
        rot = self._rotation(p.yaw, p.pitch)
        cx, cy, s, fc, fs = frame = self.framing(attr, geo, rot)
        res = resolution or self.resolution
        grid = self.grid if res == self.resolution else self._grid(res).to(self.grid)

        # Step 1: canonical (aligned) coordinates of every output pixel, undoing the in-plane
        # similarity, then head-frame camera coordinates x, y.
        roll = torch.deg2rad(p.roll)
        cr, sr = _exact(torch.cos, roll), _exact(torch.sin, roll)
        gx = grid.view(1, 1, res) - p.shift[:, 0, None, None]
        gy = grid.view(1, res, 1) - p.shift[:, 1, None, None]
        inv = (1 / p.scale)[:, None, None]
        u = (cr[:, None, None] * gx + sr[:, None, None] * gy) * inv
        v = (-sr[:, None, None] * gx + cr[:, None, None] * gy) * inv
        fc, fs = fc[:, None, None], fs[:, None, None]
        x = cx[:, None, None] + s[:, None, None] * (fc * u - fs * v)  # [B, R, R]
        y = cy[:, None, None] + s[:, None, None] * (fs * u + fc * v)
        px = (2 * s / res / p.scale)[:, None, None]  # one output pixel in head units
        ipx = 1.7 / px  # scales head-unit distances to soft-edge logits

        hit = self._cast(x, y, rot, attr, ipx)
        col = self._paint(hit, x, y, rot, attr, geo, p, ipx)
        image = col * 2 - 1
        landmarks = self._landmarks(attr, geo, rot, frame, p, res)
        return image, landmarks

    def landmarks(self, p: FaceParams, resolution: int | None = None) -> torch.Tensor:
        """Only the 5 landmarks [B, 5, 2] in pixels, without rendering (cheap)."""
        attr = self.attributes(p.identity)
        geo = self._expression_geometry(attr, p.expression)
        rot = self._rotation(p.yaw, p.pitch)
        frame = self.framing(attr, geo, rot)
        return self._landmarks(attr, geo, rot, frame, p, resolution or self.resolution)

    def _cast(self, x, y, rot, attr, ipx) -> dict[str, torch.Tensor]:
        """Orthographic rays against the rotated ellipsoid: hit point, coverage, normal."""
        a, b, c = attr["head_width"], attr["head_height"], HEAD_DEPTH
        inv_r2 = torch.stack([1 / a**2, 1 / b**2, torch.full_like(a, 1 / c**2)], 1)  # [B, 3]
        d = rot[:, 2, :]  # the camera's z axis in the head frame
        p0 = [x * rot[:, 0, i, None, None] + y * rot[:, 1, i, None, None] for i in range(3)]
        qa = (d * d * inv_r2).sum(1)[:, None, None]
        dr = d * inv_r2
        qb = (
            p0[0] * dr[:, 0, None, None]
            + p0[1] * dr[:, 1, None, None]
            + p0[2] * dr[:, 2, None, None]
        )
        qc = (
            p0[0] ** 2 * inv_r2[:, 0, None, None]
            + p0[1] ** 2 * inv_r2[:, 1, None, None]
            + p0[2] ** 2 * inv_r2[:, 2, None, None]
            - 1
        )
        disc = qb * qb - qa * qc
        # disc / (2 r qa^2) approximates the signed distance to the silhouette (exact for a sphere).
        inside = _soft(disc * (ipx / (qa * qa * 1.8)))
        t = (torch.sqrt(disc.clamp(min=1e-6)) - qb) / qa
        X, Y, Z = (p0[i] + t * d[:, i, None, None] for i in range(3))
        # Narrow the jaw: cut the lower sides of the ellipsoid.
        lower = torch.relu(Y / b[:, None, None]) ** 2
        jaw_edge = a[:, None, None] * (1 - attr["jaw"][:, None, None] * lower) - X.abs()
        inside = inside * _soft(jaw_edge * ipx)
        normal = [X * inv_r2[:, 0, None, None], Y * inv_r2[:, 1, None, None], Z / c**2]
        norm = torch.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2 + 1e-8)
        return dict(X=X, Y=Y, Z=Z, inside=inside, normal=normal, norm=norm)

    def _paint(self, hit, x, y, rot, attr, geo, p, ipx) -> torch.Tensor:
        """Colours the background, hair, neck, skin and features; returns RGB in [0, 1]."""
        B = x.shape[0]
        X, Y, Z = hit["X"], hit["Y"], hit["Z"]
        Xa = X.abs()
        front = _soft((Z - 0.2) * ipx)
        ones = x.new_ones(B)

        # Illumination: camera-frame light direction, taken into the head frame.
        az = torch.deg2rad(p.light_azimuth)
        light = torch.stack([_exact(torch.sin, az), -0.25 * ones, _exact(torch.cos, az)], 1)
        light = light / light.norm(dim=1, keepdim=True)
        lh = (rot.transpose(1, 2) @ light[:, :, None])[:, :, 0]  # head frame
        n = hit["normal"]
        ndotl = (
            n[0] * lh[:, 0, None, None] + n[1] * lh[:, 1, None, None] + n[2] * lh[:, 2, None, None]
        )
        diffuse = torch.relu(ndotl / hit["norm"])
        amb, strength = p.ambient[:, None, None], p.light_strength[:, None, None]
        shade = amb + (1 - amb) * strength * diffuse  # [B, R, R]
        flat_shade = amb + (1 - amb) * strength * 0.55  # [B, 1, 1]
        tint = p.light_tint[:, None, None]
        light_rgb = [1 + 0.08 * tint, 1.0, 1 - 0.08 * tint]  # warm .. cool light

        # Colours of this identity.
        tone = attr["skin_tone"]
        skin = _rgb(
            0.36 + 0.58 * tone + 0.04 * attr["skin_red"],
            0.22 + 0.56 * tone,
            0.15 + 0.52 * tone - 0.05 * attr["skin_yellow"],
        )
        hl, hr, hg = attr["hair_light"], attr["hair_red"], attr["hair_grey"]
        # Mostly dark hair; blond needs hair_light near 1 (cubed), red tints, grey blends.
        blond, dark = hl**3, 1 - hl**3
        base = (
            0.06 * dark + 0.86 * blond + 0.45 * hr * dark,
            0.045 * dark + 0.7 * blond + 0.12 * hr * dark,
            0.035 * dark + 0.38 * blond + 0.02 * hr * dark,
        )
        hair = _rgb(*(c + 0.7 * hg * hg * (0.66 - c) for c in base))
        ih, idk = attr["iris_hue"], 1 - 0.6 * attr["iris_dark"]
        iris = _rgb((0.45 - 0.25 * ih) * idk, (0.28 + 0.2 * ih) * idk, (0.15 + 0.45 * ih) * idk)
        lip_dark = (1 - 0.35 * attr["lip_dark"])[:, None, None]
        lips = _rgb(0.55 + 0.3 * attr["lip_red"], 0.25 * ones, 0.25 * ones)
        lips = [0.5 * lc * lip_dark + 0.4 * sc for lc, sc in zip(lips, skin)]

        # Background, hair volume behind the head, neck.
        gradient = p.background_gradient[:, None, None] * (y - 0.5)
        col = [gradient + p.background[:, c, None, None] for c in range(3)]
        col = _over(col, self._hair_volume(x, y, rot, attr, ipx), _lit(hair, flat_shade, light_rgb))
        b = attr["head_height"][:, None, None]
        neck = _soft((0.45 * attr["head_width"][:, None, None] - x.abs()) * ipx) * _soft(y * ipx)
        col = _over(col, neck, _lit(skin, 0.82 * flat_shade, light_rgb))
        # Shoulders in plain clothes below the neck.
        sx, sy = x / 2.4, (y - b - 1.25) / 0.85
        shoulders = _soft((1 - sx * sx - sy * sy) * (0.8 * ipx))
        col = _over(col, shoulders, _rgb(0.25 * ones, 0.28, 0.34))

        # The face, painted on the ellipsoid surface.
        face = skin
        # Creases first: hair falls over them.
        cheeks, folds, wrinkles = self._creases(Xa, Y, attr, geo, ipx, front)
        face = _over(face, cheeks, _scale(skin, 1.3))  # raised cheeks catch the light
        face = _over(face, folds, _scale(skin, 0.55))
        face = _over(face, wrinkles, _scale(skin, 0.6))
        phase = p.hair_phase[:, None, None]
        strands = 0.95 + 0.05 * torch.sin(25 * X + 6 * Y + phase)  # a hint of hair texture
        face = _over(face, self._hair_on_head(X, Y, Z, attr, ipx), _scale(hair, strands))
        face = _over(face, self._ear(X, Y, Z, attr, ipx), _scale(skin, 0.88))
        eyes, iris_m, pupil, lid = self._eyes(Xa, Y, attr, geo, ipx, front)
        face = _over(face, lid, _scale(skin, 0.45))
        face = _over(face, eyes, _rgb(0.93 * ones, 0.93, 0.9))
        face = _over(face, iris_m, iris)
        face = _over(face, pupil, _rgb(0.05 * ones, 0.04, 0.04))
        face = _over(face, self._brows(Xa, Y, attr, geo, ipx, front), _scale(hair, 0.8))
        lip_m, mouth_m, teeth_m = self._mouth(Xa, Y, attr, geo, ipx, front)
        face = _over(face, self._beard(Xa, Y, attr, geo, ipx, front), _scale(hair, 0.9))
        face = _over(face, lip_m, lips)
        face = _over(face, mouth_m, _rgb(0.22 * ones, 0.06, 0.07))
        face = _over(face, teeth_m, _rgb(0.92 * ones, 0.9, 0.85))
        col = _over(col, hit["inside"], _lit(face, shade, light_rgb))

        # The nose sticks out of the surface: drawn in image space at its projected tip.
        nose_m, nose_shade, nostril_m = self._nose(x, y, rot, attr, p, ipx)
        col = _over(col, nose_m, _lit(skin, flat_shade * nose_shade, light_rgb))
        col = _over(col, nostril_m, _lit(skin, 0.35 * flat_shade, light_rgb))
        return torch.stack(col, dim=1)

    # -- parts ----------------------------------------------------------------------------
    def _hair_volume(self, x, y, rot, attr, ipx) -> torch.Tensor:
        """Hair mass around the top and sides of the head, behind it (projected ellipse)."""
        vol = attr["hair_volume"]
        a, b, c = attr["head_width"] + vol, attr["head_height"] + vol, HEAD_DEPTH + vol
        centre = torch.stack([torch.zeros_like(vol), -0.6 * vol, -0.15 - vol], 1)
        cc = (rot @ centre[:, :, None])[:, :, 0]
        cos_y, sin_y = rot[:, 0, 0], rot[:, 0, 2]
        rx = torch.sqrt(a**2 * cos_y**2 + c**2 * sin_y**2)
        ry = torch.sqrt(b**2 * rot[:, 1, 1] ** 2 + c**2 * rot[:, 1, 2] ** 2)
        dx = (x - cc[:, 0, None, None]) / rx[:, None, None]
        dy = (y - cc[:, 1, None, None]) / ry[:, None, None]
        ellipse = _soft((1 - dx * dx - dy * dy) * (rx[:, None, None] * 0.5 * ipx))
        # Short hair stops at the ears; long hair reaches below the chin.
        bottom = attr["eye_height"] + 0.25 + 1.1 * attr["hair_length"]
        return ellipse * _soft((bottom[:, None, None] - y) * ipx)

    def _hair_on_head(self, X, Y, Z, attr, ipx) -> torch.Tensor:
        """Hair on the skull: above the hairline, and over the back of the head."""
        hairline = (
            attr["hairline"][:, None, None] + 0.35 * X * X + attr["hair_part"][:, None, None] * X
        )
        top = _soft((hairline - Y) * ipx)
        ear_bottom = (attr["eye_height"] + 0.45 + 0.6 * attr["hair_length"])[:, None, None]
        back = _soft((-0.05 - Z) * ipx) * _soft((ear_bottom - Y) * ipx)
        return 1 - (1 - top) * (1 - back)

    def _ear(self, X, Y, Z, attr, ipx) -> torch.Tensor:
        """An ear on each side of the head, on the surface where |X| is near the width."""
        size = attr["ear_size"][:, None, None]
        ey = attr["eye_height"][:, None, None]
        dy = (Y - ey - 0.18) / (0.2 * size)
        dz = (Z + 0.02) / (0.11 * size)
        side = _soft((X.abs() - 0.6 * attr["head_width"][:, None, None]) * ipx)
        return _soft((1 - dy * dy - dz * dz) * (0.1 * size * ipx)) * side

    def _eyes(self, Xa, Y, attr, geo, ipx, front):
        """Both eyes at once on |X|: opening (sclera), iris, pupil, and the upper-lid line."""
        ex, ey = attr["eye_spacing"][:, None, None], attr["eye_height"][:, None, None]
        ew = attr["eye_size"][:, None, None]
        eh = ew * geo["eye_open"][:, None, None]
        dx, dy = (Xa - ex) / ew, (Y - ey) / eh
        e = dx * dx + dy * dy
        opening = _soft((1 - e) * (eh * 0.5 * ipx)) * front
        lid_band = _soft((1.45 - e) * (eh * 0.5 * ipx)) * _soft((ey - Y) * ipx + 2.55) * front
        ri = 0.5 * ew
        r2 = ((Xa - ex) ** 2 + (Y - ey) ** 2) / (ri * ri)
        iris = _soft((1 - r2) * (ri * 0.5 * ipx)) * opening
        pupil = _soft((0.2 - r2) * (ri * 0.5 * ipx)) * opening
        return opening, iris, pupil, lid_band

    def _brows(self, Xa, Y, attr, geo, ipx, front):
        """Eyebrows: arcs above the eyes, lifted and tilted by expressions."""
        ex, ey = attr["eye_spacing"][:, None, None], attr["eye_height"][:, None, None]
        ew = attr["eye_size"][:, None, None]
        lift = (attr["brow_height"] + geo["brow_lift"])[:, None, None]
        rel = Xa - ex
        centre = ey - lift + 0.9 * rel * rel - geo["brow_tilt"][:, None, None] * rel
        half = 0.5 * attr["brow_thickness"][:, None, None]
        band = _soft((half - (Y - centre).abs()) * ipx)
        span = _soft((1.5 * ew - (rel - 0.1 * ew).abs()) * ipx)
        return band * span * front

    def _beard(self, Xa, Y, attr, geo, ipx, front):
        """Beard on the chin and jaw plus a moustache; absent for most identities."""
        alpha = 0.75 * attr["beard"].clamp(min=0)[:, None, None]
        my = (attr["eye_height"] + attr["nose_length"] + attr["mouth_drop"])[:, None, None]
        chin = _soft((Y - my - 0.08) * ipx)
        mw = attr["mouth_width"][:, None, None]
        tash = (
            _soft((Y - my + 0.1) * ipx)
            * _soft((my - 0.03 - Y) * ipx)
            * _soft((1.2 * mw - Xa) * ipx)
        )
        return alpha * (1 - (1 - chin) * (1 - tash)) * front

    def _creases(self, Xa, Y, attr, geo, ipx, front):
        """Raised cheeks, nasolabial folds and wrinkles at the nose root, from expressions."""
        ex, ey = attr["eye_spacing"][:, None, None], attr["eye_height"][:, None, None]
        raise_ = geo["cheek_raise"][:, None, None]
        dx = (Xa - ex - 0.03) / 0.15
        dy = (Y - ey - 0.22 + 0.04 * raise_) / 0.1
        cheeks = _soft((1 - dx * dx - dy * dy) * (0.1 * ipx)) * (0.8 * raise_) * front
        # The fold runs from beside the nose tip to just outside the mouth corner, bowing out.
        tip_y = ey + attr["nose_length"][:, None, None]
        corner_y = tip_y + (attr["mouth_drop"] - geo["corner_lift"])[:, None, None]
        t = ((Y - tip_y) / (corner_y - tip_y)).clamp(0, 1)
        start, end = (
            1.4 * attr["nose_width"][:, None, None],
            1.08 * geo["mouth_width"][:, None, None],
        )
        fold_x = start + (end - start) * t + 0.04 * torch.sin(torch.pi * t)
        folds = (
            _soft((0.02 - (Xa - fold_x).abs()) * ipx)
            * _soft((Y - tip_y) * ipx)
            * _soft((corner_y + 0.03 - Y) * ipx)
            * (0.75 * raise_)
            * front
        )
        # Horizontal creases across the nose root.
        rel = Y - ey
        region = _soft((0.12 - Xa) * ipx) * _soft((rel + 0.04) * ipx) * _soft((0.14 - rel) * ipx)
        stripes = torch.sigmoid(3 * torch.sin(rel * (2 * torch.pi / 0.06)))
        wrinkles = region * stripes * (0.9 * geo["wrinkle"][:, None, None])
        # Crow's feet: creases fanning out from the outer eye corners.
        outer = Xa - ex - attr["eye_size"][:, None, None]
        fan = _soft(outer * ipx) * _soft((0.12 - outer) * ipx) * _soft((0.07 - rel.abs()) * ipx)
        rays = torch.sigmoid(3 * torch.sin((rel / (outer.abs() + 0.04)) * 9))
        crows = fan * rays * (0.9 * geo["crows_feet"][:, None, None])
        # Raised brows fold the forehead into horizontal lines above them.
        above = (ey - attr["brow_height"][:, None, None]) - Y  # height above the brows
        band = _soft((0.3 - Xa) * ipx) * _soft((above - 0.06) * ipx) * _soft((0.24 - above) * ipx)
        lines = torch.sigmoid(3 * torch.sin(above * (2 * torch.pi / 0.055)))
        forehead = band * lines * (0.8 * geo["forehead"][:, None, None])
        wrinkles = (1 - (1 - wrinkles) * (1 - crows) * (1 - forehead)) * front
        return cheeks, folds, wrinkles

    def _mouth(self, Xa, Y, attr, geo, ipx, front):
        """Lips, the open mouth and teeth, from curves in |X|."""
        ey = attr["eye_height"]
        my = (ey + attr["nose_length"] + attr["mouth_drop"])[:, None, None]
        mw = geo["mouth_width"][:, None, None]
        t2 = (Xa / mw) ** 2
        bulge = torch.relu(1 - t2)
        lift = geo["corner_lift"][:, None, None] * t2
        half_open = 0.5 * geo["mouth_open"][:, None, None] * bulge
        upper_in = my - lift - half_open - geo["upper_lip_raise"][:, None, None] * bulge
        lower_in = my - lift + half_open
        lt = attr["lip_thickness"][:, None, None]
        upper_out = upper_in - lt * (0.3 + 0.7 * bulge)
        lower_out = lower_in + 1.3 * lt * (0.3 + 0.7 * bulge)
        width = _soft((mw - Xa) * ipx) * front
        lips = width * _soft((Y - upper_out) * ipx) * _soft((lower_out - Y) * ipx)
        inner = width * _soft((Y - upper_in) * ipx - 0.85) * _soft((lower_in - Y) * ipx - 0.85)
        tooth = (upper_in + 0.45 * (lower_in - upper_in)) - Y
        teeth = inner * _soft(tooth * ipx) * geo["teeth"][:, None, None]
        return lips, inner, teeth

    def _nose_points(self, attr, rot) -> tuple[torch.Tensor, torch.Tensor]:
        """Camera-frame nose root (between the eyes) and tip, [B, 3] each."""
        a, b = attr["head_width"], attr["head_height"]
        ey = attr["eye_height"]
        tip_y = ey + attr["nose_length"]
        root_z = HEAD_DEPTH * torch.sqrt(1 - (ey / b) ** 2)
        tip_z = HEAD_DEPTH * torch.sqrt(1 - (tip_y / b) ** 2) + attr["nose_protrusion"]
        zero = torch.zeros_like(a)
        root = torch.stack([zero, ey + 0.06, root_z], 1)
        tip = torch.stack([zero, tip_y, tip_z], 1)
        return (rot @ root[:, :, None])[:, :, 0], (rot @ tip[:, :, None])[:, :, 0]

    def _nose(self, x, y, rot, attr, p, ipx):
        """Nose bridge and tip with a lit and a shadowed side, and nostrils."""
        root, tip = self._nose_points(attr, rot)
        nw = attr["nose_width"][:, None, None]
        rx, ry = root[:, 0, None, None], root[:, 1, None, None]
        tx, ty = tip[:, 0, None, None], tip[:, 1, None, None]
        # Distance to the root-tip segment, and which side of it the pixel is on.
        sx, sy = tx - rx, ty - ry
        seg2 = sx * sx + sy * sy + 1e-6
        h = (((x - rx) * sx + (y - ry) * sy) / seg2).clamp(0, 1)
        ddx, ddy = x - rx - h * sx, y - ry - h * sy
        dist = torch.sqrt(ddx * ddx + ddy * ddy + 1e-8)
        width = nw * (0.35 + 0.65 * h)  # the nose widens towards the tip
        bridge = _soft((width - dist) * ipx)
        side = torch.tanh((ddx * sy - ddy * sx) / torch.sqrt(seg2) / (0.5 * nw))
        # Tip: a soft ellipse below the segment's end.
        dtx, dty = (x - tx) / (1.1 * nw), (y - ty) / (0.7 * nw)
        tip_m = _soft((1 - dtx * dtx - dty * dty) * (0.6 * nw * ipx))
        mask = 1 - (1 - bridge) * (1 - tip_m)
        facing = _soft(1.7 * (rot[:, 2, 2, None, None] * 10 + 2))  # hidden when the head faces away
        lit = _exact(torch.sin, torch.deg2rad(p.light_azimuth))[:, None, None]
        # The flank facing the light (side and light azimuth of the same sign) is the bright one.
        nose_shade = 1 - 0.22 * p.light_strength[:, None, None] * (0.4 - side * lit)
        # Nostrils: two dark dots under the tip, foreshortened with yaw.
        cyaw = rot[:, 0, 0, None, None]
        nx = (x - tx).abs() / (cyaw.abs() + 0.15)
        n2 = ((nx - 0.55 * nw) / (0.28 * nw)) ** 2 + ((y - ty - 0.45 * nw) / (0.18 * nw)) ** 2
        nostrils = _soft((1 - n2) * (0.15 * nw * ipx)) * _soft(1.7 * ((cyaw.abs() - 0.5) * 8))
        return mask * facing, nose_shade, nostrils * facing

    # -- landmarks ------------------------------------------------------------------------
    def _camera_points(self, attr, geo, rot) -> torch.Tensor:
        """The 5 ArcFace points in camera-frame x, y (head units) [B, 5, 2]."""
        a, b = attr["head_width"], attr["head_height"]
        ex, ey = attr["eye_spacing"], attr["eye_height"]
        my = ey + attr["nose_length"] + attr["mouth_drop"] - geo["corner_lift"]
        mw = geo["mouth_width"]

        def surface(X, Y):
            z = HEAD_DEPTH * torch.sqrt((1 - (X / a) ** 2 - (Y / b) ** 2).clamp(min=1e-4))
            return torch.stack([X, Y, z], 1)

        _, tip = self._nose_points(attr, rot)
        pts = torch.stack(
            [
                (rot @ surface(-ex, ey)[:, :, None])[:, :, 0],
                (rot @ surface(ex, ey)[:, :, None])[:, :, 0],
                tip,
                (rot @ surface(-mw, my)[:, :, None])[:, :, 0],
                (rot @ surface(mw, my)[:, :, None])[:, :, 0],
            ],
            1,
        )
        return pts[:, :, :2]

    def _landmarks(self, attr, geo, rot, frame, p, res) -> torch.Tensor:
        """The 5 ArcFace points, projected with the same pose and framing as the pixels."""
        cx, cy, s, fc, fs = (t[:, None] for t in frame)
        pts = self._camera_points(attr, geo, rot)
        dx, dy = pts[..., 0] - cx, pts[..., 1] - cy
        u = (fc * dx + fs * dy) / s  # undo the framing rotation
        v = (-fs * dx + fc * dy) / s
        roll = torch.deg2rad(p.roll)[:, None]
        cr, sr = _exact(torch.cos, roll), _exact(torch.sin, roll)
        sc = p.scale[:, None]
        gx = sc * (cr * u - sr * v) + p.shift[:, 0, None]
        gy = sc * (sr * u + cr * v) + p.shift[:, 1, None]
        half = res / 2
        return torch.stack([(gx + 1) * half - 0.5, (gy + 1) * half - 0.5], -1)
