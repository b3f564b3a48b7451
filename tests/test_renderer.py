"""The differentiable face renderer: shapes, gradients, landmarks against pixels, sanity.

Landmarks use pixel centres at integer coordinates; normalised coordinates are
u = (lm + 0.5) / (R / 2) - 1, which is also ``grid_sample``'s ``align_corners=False`` convention.
"""

import math
from dataclasses import fields

import pytest
import torch
import torch.nn.functional as F

from brownface.world.renderer import EXPRESSIONS, IDENTITY_ATTRIBUTES, FaceParams, FaceRenderer

ID_DIM = 16
FIELDS = [f.name for f in fields(FaceParams)]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):  # conftest: small tensors, steadier on a shared machine
    yield


@pytest.fixture(scope="module")
def renderer():
    return FaceRenderer(resolution=64, identity_dim=ID_DIM, seed=0)


def identities(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, ID_DIM, generator=torch.Generator().manual_seed(seed))


def full(n: int, value: float) -> torch.Tensor:
    return torch.full((n,), float(value))


def varied_params(dtype=torch.float32) -> FaceParams:
    """Four faces with every factor away from its default (each field its own tensor)."""
    t = lambda v: torch.tensor(v, dtype=dtype)  # noqa: E731
    return FaceParams(
        identity=identities(4, seed=1).to(dtype),
        yaw=t([-30.0, 0.0, 15.0, 50.0]),
        pitch=t([10.0, -5.0, 0.0, 20.0]),
        light_azimuth=t([-40.0, 0.0, 30.0, 70.0]),
        light_strength=t([0.6, 0.3, 0.9, 0.5]),
        ambient=t([0.4, 0.5, 0.3, 0.6]),
        expression=t(
            [
                [0.6, 0.0, 0.0, 0.0, 0.0],
                [0.0, 0.5, 0.0, 0.0, 0.0],
                [0.0, 0.0, 0.5, 0.4, 0.0],
                [0.2, 0.0, 0.0, 0.0, 0.7],
            ]
        ),
        roll=t([10.0, 0.0, -20.0, 5.0]),
        scale=t([1.0, 0.9, 1.1, 0.8]),
        shift=t([[0.05, -0.02], [0.0, 0.0], [-0.1, 0.05], [0.02, 0.1]]),
        background=t([[0.5, 0.6, 0.7], [0.3, 0.3, 0.3], [0.8, 0.7, 0.5], [0.4, 0.6, 0.4]]),
        background_gradient=t([0.1, -0.05, 0.0, 0.12]),
        light_tint=t([0.5, -0.3, 0.1, -0.8]),
        hair_phase=t([0.3, -1.0, 2.0, 0.0]),
    )


def luminance(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, R, R] in [-1, 1] -> [B, R, R] in [0, 1]."""
    return ((images + 1) / 2).mean(1)


def sample(lum: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of lum [B, R, R] at pixel coordinates points [B, K, 2] -> [B, K]."""
    res = lum.shape[-1]
    g = (points + 0.5) / res * 2 - 1
    return F.grid_sample(lum[:, None], g[:, :, None, :], align_corners=False)[:, 0, :, 0]


def to_unit(lm: torch.Tensor, res: int) -> torch.Tensor:
    return (lm + 0.5) / (res / 2) - 1


# -- shapes and ranges --------------------------------------------------------------------
@pytest.mark.parametrize("resolution", [None, 32])
def test_shapes_range_and_finiteness(renderer, resolution):
    p = varied_params()
    with torch.no_grad():
        images, lm = renderer(p, resolution=resolution)
    res = resolution or 64
    assert images.shape == (4, 3, res, res) and images.dtype == torch.float32
    assert lm.shape == (4, 5, 2)
    assert torch.isfinite(images).all() and torch.isfinite(lm).all()
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.1  # not a blank canvas


# -- gradients ----------------------------------------------------------------------------
def test_gradients_reach_every_field(renderer):
    p = varied_params()
    for name in FIELDS:
        getattr(p, name).requires_grad_(True)
    images, _ = renderer(p, resolution=32)
    proj = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    (images * proj).sum().backward()
    for name in FIELDS:
        grad = getattr(p, name).grad
        assert grad is not None, name
        assert torch.isfinite(grad).all(), name
        assert grad.norm() > 1e-4, name
    # Every expression and every identity dimension moves some pixel of some face.
    assert (p.expression.grad.abs().amax(0) > 1e-4).all(), p.expression.grad
    assert (p.identity.grad.abs().amax(0) > 1e-4).all(), p.identity.grad


def test_gradients_match_finite_differences():
    """Directional derivatives by autograd agree with central differences (float64)."""
    r64 = FaceRenderer(resolution=16, identity_dim=ID_DIM, seed=0).double()
    p = varied_params(torch.float64)
    gen = torch.Generator().manual_seed(1)
    proj = torch.randn(4, 3, 16, 16, generator=gen, dtype=torch.float64)

    def loss(q):
        return (r64(q)[0] * proj).sum()

    for name in FIELDS:
        x = getattr(p, name).detach()
        direction = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(p.replace(**{name: xg})), xg)
        eps = 1e-6  # silhouette hit points move steeply (sqrt of the discriminant): keep it small
        with torch.no_grad():
            fd = (
                loss(p.replace(**{name: x + eps * direction}))
                - loss(p.replace(**{name: x - eps * direction}))
            ) / (2 * eps)
        analytic = (grad * direction).sum()
        assert abs(analytic - fd) <= 1e-4 * (1 + abs(fd)), (name, analytic.item(), fd.item())


def test_landmark_gradients_are_finite(renderer):
    p = varied_params()
    geometric = ["identity", "yaw", "pitch", "expression", "roll", "scale", "shift"]
    for name in geometric:
        getattr(p, name).requires_grad_(True)
    lm = renderer.landmarks(p)
    lm.sum().backward()
    for name in geometric:
        grad = getattr(p, name).grad
        assert torch.isfinite(grad).all() and grad.norm() > 1e-4, name


# -- landmarks against the pixels ---------------------------------------------------------
YAWS = (-45.0, -20.0, 0.0, 20.0, 45.0)
PITCHES = (-15.0, 0.0, 15.0)
BIG = 256


@pytest.fixture(scope="module")
def pose_grid(renderer):
    """Two identities x 5 yaws x 3 pitches at 256 px."""
    yaw, pitch = torch.meshgrid(torch.tensor(YAWS), torch.tensor(PITCHES), indexing="ij")
    yaw, pitch = yaw.reshape(-1).repeat(2), pitch.reshape(-1).repeat(2)
    ident = identities(2, seed=3).repeat_interleave(len(YAWS) * len(PITCHES), 0)
    n = len(yaw)
    # Neutral expression, perfectly even light (ambient only): pupils are the darkest pixels.
    p = FaceParams.neutral(
        ident, yaw=yaw, pitch=pitch, light_strength=full(n, 0), ambient=full(n, 1)
    )
    with torch.no_grad():
        images, lm = renderer(p, resolution=BIG)
    return p, luminance(images), lm


def near_eyes(yaw: torch.Tensor) -> list[list[int]]:
    """The eyes to check per face: the near eye always; both when |yaw| < 45.

    Yaw > 0 turns the nose to the image's right, so the image-right eye (index 1) is the far,
    foreshortened one; for yaw < 0 it is the image-left eye (index 0).
    """
    out = []
    for y in yaw.tolist():
        if abs(y) < 45:
            out.append([0, 1])
        else:
            out.append([0] if y > 0 else [1])
    return out


def test_eye_landmarks_sit_on_dark_pupils(pose_grid):
    p, lum, lm = pose_grid
    eyes = sample(lum, lm[:, :2])
    cheeks = sample(lum, lm[:, :2] + torch.tensor([0.0, 0.1 * BIG]))
    for b, which in enumerate(near_eyes(p.yaw)):
        for e in which:
            pose = (p.yaw[b].item(), p.pitch[b].item(), e)
            assert eyes[b, e] < 0.35, pose
            assert eyes[b, e] < 0.75 * cheeks[b, e], (pose, eyes[b, e], cheeks[b, e])


def test_pupil_is_centred_on_eye_landmark(pose_grid):
    """The darkest blob around each eye landmark is centred on it (within 1% of the image)."""
    p, lum, lm = pose_grid
    h = 6
    ys, xs = torch.meshgrid(torch.arange(-h, h + 1.0), torch.arange(-h, h + 1.0), indexing="ij")
    for b, which in enumerate(near_eyes(p.yaw)):
        for e in which:
            x, y = lm[b, e].round().long().tolist()
            win = lum[b, y - h : y + h + 1, x - h : x + h + 1]
            w = (win < win.min() + 0.05).float()
            cx = x + (w * xs).sum() / w.sum()
            cy = y + (w * ys).sum() / w.sum()
            err = torch.hypot(cx - lm[b, e, 0], cy - lm[b, e, 1])
            assert err < 0.01 * BIG, (p.yaw[b].item(), p.pitch[b].item(), e, err)


def test_nose_and_mouth_layout(pose_grid):
    p, _, lm = pose_grid
    eye_l, eye_r, nose, mouth_l, mouth_r = lm.unbind(1)
    # Image-left before image-right, eyes above the nose tip, mouth corners below it.
    assert (eye_l[:, 0] < eye_r[:, 0]).all() and (mouth_l[:, 0] < mouth_r[:, 0]).all()
    assert (eye_l[:, 1] < nose[:, 1]).all() and (eye_r[:, 1] < nose[:, 1]).all()
    assert (mouth_l[:, 1] > nose[:, 1]).all() and (mouth_r[:, 1] > nose[:, 1]).all()
    moderate = p.yaw.abs() <= 20
    assert (eye_l[moderate, 0] < nose[moderate, 0]).all()
    assert (nose[moderate, 0] < eye_r[moderate, 0]).all()
    # Frontal: the nose tip is exactly midway between the eyes, on the image's midline.
    frontal = (p.yaw == 0) & (p.pitch == 0)
    mid = (eye_l[frontal, 0] + eye_r[frontal, 0]) / 2
    torch.testing.assert_close(nose[frontal, 0], mid)
    torch.testing.assert_close(nose[frontal, 0], torch.full_like(mid, (BIG - 1) / 2))
    # Yaw > 0 moves the nose tip to the image's right.
    nose_x = nose[:15].view(len(YAWS), len(PITCHES), 2)[:, 1, 0]  # first face, pitch 0
    assert (nose_x.diff() > 0).all()


def test_landmarks_method_equals_forward(renderer):
    p = varied_params()
    with torch.no_grad():
        for res in (None, 48):
            _, lm = renderer(p, resolution=res)
            assert torch.equal(renderer.landmarks(p, resolution=res), lm)


def test_landmarks_scale_with_resolution(renderer):
    p = varied_params()
    lm64 = renderer.landmarks(p, resolution=64)
    lm128 = renderer.landmarks(p, resolution=128)
    torch.testing.assert_close((lm64 + 0.5) / 64, (lm128 + 0.5) / 128)
    # A renderer built at 128 px draws the same face.
    big = FaceRenderer(resolution=128, identity_dim=ID_DIM, seed=0)
    torch.testing.assert_close(big.landmarks(p), lm128)


def test_in_plane_similarity_of_landmarks(renderer):
    p = varied_params()
    canon = p.replace(roll=torch.zeros(4), scale=torch.ones(4), shift=torch.zeros(4, 2))
    res = 64
    u = to_unit(renderer.landmarks(canon), res)  # [B, 5, 2]
    roll = torch.deg2rad(p.roll)
    c, s = torch.cos(roll), torch.sin(roll)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # [B, 2, 2]
    g = p.scale[:, None, None] * (u @ rot.transpose(1, 2)) + p.shift[:, None, :]
    torch.testing.assert_close(to_unit(renderer.landmarks(p), res), g)


def test_in_plane_similarity_of_pixels(renderer):
    ident = identities(3, seed=4)
    n, res = 3, 160
    p = FaceParams.neutral(
        ident,
        yaw=torch.tensor([0.0, 15.0, -10.0]),
        roll=torch.tensor([25.0, -30.0, 10.0]),
        scale=torch.tensor([0.85, 1.1, 0.7]),
        shift=torch.tensor([[0.08, -0.05], [-0.06, 0.04], [0.0, 0.12]]),
        light_strength=full(n, 0),
        ambient=full(n, 1),
    )
    with torch.no_grad():
        images, lm = renderer(p, resolution=res)
    lum = luminance(images)
    roll = torch.deg2rad(p.roll)
    down = torch.stack([-torch.sin(roll), torch.cos(roll)], -1) * p.scale[:, None]  # face's "down"
    eyes = sample(lum, lm[:, :2])
    cheeks = sample(lum, lm[:, :2] + 0.1 * res * down[:, None])
    assert (eyes < 0.35).all() and (eyes < 0.75 * cheeks).all(), (eyes, cheeks)


def test_shift_translates_the_image(renderer):
    """A shift of k pixels (k * 2 / R in half-image units) moves the image by k pixels."""
    ident = identities(2, seed=5)
    k, res = 4, 64
    base = FaceParams.neutral(ident)
    moved = base.replace(shift=torch.tensor([[2 * k / res, -2 * k / res]] * 2))
    with torch.no_grad():
        im0, lm0 = renderer(base)
        im1, lm1 = renderer(moved)
    torch.testing.assert_close(
        im1[:, :, : res - k, k:], im0[:, :, k:, : res - k], atol=1e-4, rtol=0
    )
    torch.testing.assert_close(lm1, lm0 + torch.tensor([k, -k]), atol=1e-4, rtol=0)


# -- the picture follows the parameters ---------------------------------------------------
def feature_shift(lum0, lum1, lm0, axis: int, max_shift: int = 10) -> list[int]:
    """Per face, the integer shift (pixels along axis: 0 = x, 1 = y) that best maps the
    central face box of lum0 (eyes to mouth, between the eyes) onto lum1."""
    out = []
    for b in range(lum0.shape[0]):
        x0, x1 = int(lm0[b, 0, 0]), int(lm0[b, 1, 0]) + 1
        y0, y1 = int(lm0[b, :2, 1].mean()) - 3, int(lm0[b, 3:, 1].mean()) + 4
        ref = lum0[b, y0:y1, x0:x1]
        errs = {}
        for d in range(-max_shift, max_shift + 1):
            dx, dy = (d, 0) if axis == 0 else (0, d)
            errs[d] = (lum1[b, y0 + dy : y1 + dy, x0 + dx : x1 + dx] - ref).abs().mean().item()
        out.append(min(errs, key=errs.get))
    return out


def test_yaw_turns_the_face_inside_its_ffhq_framing(renderer):
    """Faces are framed by their own landmarks (as FFHQ aligns photos): the eye midpoint stays
    on the frame's midline while the nose tip swings to the side the face turns to."""
    n = 6
    base = FaceParams.neutral(identities(n, seed=11))
    with torch.no_grad():
        tips, mids = [], []
        for yaw in (-40, -20, 0, 20, 40):
            lm = renderer.landmarks(base.replace(yaw=full(n, yaw)))
            mids.append(0.5 * (lm[:, 0, 0] + lm[:, 1, 0]))
            tips.append(lm[:, 2, 0] - mids[-1])
    centre = (renderer.resolution - 1) / 2
    for mid in mids:
        assert (mid - centre).abs().max() < 0.5
    tips = torch.stack(tips)  # [yaw, face]
    assert (tips[1:] > tips[:-1]).all()


def test_pitch_up_raises_the_nose_towards_the_eyes(renderer):
    """Within the landmark framing, tilting the face up lifts the protruding nose tip towards
    the eye line, and tilting it down lowers it."""
    n = 6
    base = FaceParams.neutral(identities(n, seed=12))
    with torch.no_grad():
        drop = {}
        for pitch in (-15, 0, 15):
            lm = renderer.landmarks(base.replace(pitch=full(n, pitch)))
            drop[pitch] = lm[:, 2, 1] - 0.5 * (lm[:, 0, 1] + lm[:, 1, 1])
    assert (drop[15] < drop[0]).all() and (drop[0] < drop[-15]).all()


def test_light_azimuth_brightens_the_lit_side(renderer):
    n = 6
    base = FaceParams.neutral(
        identities(n, seed=13), light_strength=full(n, 0.9), ambient=full(n, 0.2)
    )

    def left_minus_right(az):
        with torch.no_grad():
            lum = luminance(renderer(base.replace(light_azimuth=full(n, az)))[0])
        return lum[:, :, :32].mean((1, 2)) - lum[:, :, 32:].mean((1, 2))

    left, even, right = left_minus_right(-60), left_minus_right(0), left_minus_right(60)
    assert (left > 0.02).all() and (right < -0.02).all(), (left, right)
    assert (left > even + 0.02).all() and (right < even - 0.02).all()


def test_more_light_is_brighter(renderer):
    n = 4
    base = FaceParams.neutral(identities(n, seed=14))
    with torch.no_grad():
        by_ambient = [
            luminance(renderer(base.replace(ambient=full(n, a)))[0]).mean((1, 2))
            for a in (0.2, 0.5, 0.8)
        ]
        by_strength = [
            luminance(renderer(base.replace(light_strength=full(n, s)))[0]).mean((1, 2))
            for s in (0.1, 0.5, 0.9)
        ]
    for seq in (by_ambient, by_strength):
        assert (seq[0] < seq[1]).all() and (seq[1] < seq[2]).all()


def test_expressions_act_where_expected(renderer):
    n, res = 8, 128
    base = FaceParams.neutral(identities(n, seed=15))
    with torch.no_grad():
        im0, lm = renderer(base, resolution=res)

        def change(name):
            e = torch.zeros(n, len(EXPRESSIONS))
            e[:, EXPRESSIONS.index(name)] = 1
            diff = (renderer(base.replace(expression=e), resolution=res)[0] - im0).abs().mean(1)
            mouth, eyes, lower = [], [], []
            for b in range(n):
                l = lm[b]  # noqa: E741
                nose_y, mouth_y, eye_y = int(l[2, 1]), int(l[3:, 1].max()), int(l[:2, 1].mean())
                x0, x1 = int(l[3, 0] - 0.05 * res), int(l[4, 0] + 0.05 * res) + 1
                mouth.append(diff[b, nose_y : mouth_y + int(0.1 * res), x0:x1].sum())
                x0, x1 = int(l[0, 0] - 0.08 * res), int(l[1, 0] + 0.08 * res) + 1
                eyes.append(diff[b, eye_y - int(0.1 * res) : eye_y + int(0.05 * res), x0:x1].sum())
                lower.append(diff[b, nose_y:].sum())
            return torch.stack(mouth), torch.stack(eyes), torch.stack(lower)

        smile, scream, squint, surprise = (
            change(k) for k in ("smile", "scream", "squint", "surprise")
        )
    # Smile (which also narrows the eyes a little) acts mostly on the mouth, over the batch.
    assert smile[0].sum() > 1.2 * smile[1].sum()
    # Scream opens the mouth: more change there than at the eyes (which it also narrows).
    assert scream[0].sum() > 1.3 * scream[1].sum()
    # Squint acts on eyes, brows and the cheeks under them: far more there than below the nose.
    assert (squint[1] > 1).all() and (squint[1] > 3 * squint[2]).all()
    # Surprise widens the eyes and lifts the brows.
    assert (surprise[1] > 1).all()


def test_every_expression_is_visible_at_the_generator_resolution(renderer):
    # Inversion recovers an expression only if it changes enough pixels at 64 x 64: each one
    # at Multi-PIE strength must move the image by a tenth of a frontal flash or more.
    n = 16
    base = FaceParams.neutral(identities(n, seed=21))
    with torch.no_grad():
        im0 = renderer(base, resolution=64)[0]
        flash = renderer(
            base.replace(
                light_azimuth=full(n, -60.0), light_strength=full(n, 0.8), ambient=full(n, 0.3)
            ),
            resolution=64,
        )[0]
        light_mse = float(((flash - im0) ** 2).mean())
        for k, name in enumerate(EXPRESSIONS):
            e = torch.zeros(n, len(EXPRESSIONS))
            e[:, k] = 0.85
            im = renderer(base.replace(expression=e), resolution=64)[0]
            mse = float(((im - im0) ** 2).mean())
            assert mse > 0.03 * light_mse, (name, mse, light_mse)


def test_nose_flank_towards_the_light_is_brighter(renderer):
    n, res = 2, 256
    base = FaceParams.neutral(
        identities(n, seed=16), light_strength=full(n, 1.0), ambient=full(n, 0.3)
    )

    def flanks(az):
        with torch.no_grad():
            images, lm = renderer(base.replace(light_azimuth=full(n, az)), resolution=res)
        tip = lm[:, 2]
        up = torch.tensor([0.0, -0.06 * res])
        side = torch.tensor([0.015 * res, 0.0])
        lum = luminance(images)
        left = sample(lum, (tip + up - side)[:, None])[:, 0]
        right = sample(lum, (tip + up + side)[:, None])[:, 0]
        return left - right

    # Light from the image's left: the nose's image-left flank is the lit one.
    assert (flanks(-60) > flanks(0)).all() and (flanks(60) < flanks(0)).all()


# -- determinism and identity ------------------------------------------------------------
def test_same_inputs_give_bit_identical_images(renderer):
    p = varied_params()
    with torch.no_grad():
        a, la = renderer(p)
        b, lb = renderer(p)
        c, lc = FaceRenderer(resolution=64, identity_dim=ID_DIM, seed=0)(p)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert torch.equal(a, c) and torch.equal(la, lc)


def test_renderer_seed_changes_the_identity_mixing(renderer):
    p = varied_params()
    other = FaceRenderer(resolution=64, identity_dim=ID_DIM, seed=1)
    assert not torch.equal(renderer.mix, other.mix)
    with torch.no_grad():
        assert (renderer(p)[0] - other(p)[0]).abs().mean() > 0.02


def test_different_identities_look_different(renderer):
    ident = identities(6, seed=17)
    with torch.no_grad():
        images, _ = renderer(FaceParams.neutral(ident))
    flat = images.flatten(1)
    dist = (flat[:, None] - flat[None]).abs().mean(-1)
    off_diag = dist[~torch.eye(6, dtype=torch.bool)]
    assert off_diag.min() > 0.03, dist
    # ... while the frontal framing keeps the eyes at (nearly) the same pixels.
    lm = renderer.landmarks(FaceParams.neutral(ident))
    assert (lm[:, :2] - lm[:1, :2]).abs().max() < 0.05 * 64


def test_attributes_stay_in_their_ranges(renderer):
    ident = identities(512, seed=18) * 3  # well into the tails
    attr = renderer.attributes(ident)
    assert set(attr) == {name for name, _, _ in IDENTITY_ATTRIBUTES}
    for name, lo, hi in IDENTITY_ATTRIBUTES:
        assert attr[name].shape == (512,)
        assert (attr[name] >= lo).all() and (attr[name] <= hi).all(), name


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 15), (4, 17), (16,), (2, 4, 16)])
def test_bad_identity_shape_raises(renderer, shape):
    p = FaceParams.neutral(torch.zeros(4, ID_DIM)).replace(identity=torch.zeros(shape))
    with pytest.raises(ValueError, match="identity must have shape"):
        renderer(p)
    with pytest.raises(ValueError, match="identity must have shape"):
        renderer.landmarks(p)


def test_neutral_fields_do_not_share_storage():
    p = FaceParams.neutral(torch.zeros(2, ID_DIM))
    p.yaw.add_(10.0)
    assert (p.pitch == 0).all() and (p.light_azimuth == 0).all() and (p.roll == 0).all()


def test_neutral_defaults():
    p = FaceParams.neutral(torch.zeros(3, ID_DIM), yaw=full(3, 30))
    assert p.yaw.tolist() == [30.0] * 3
    assert p.expression.shape == (3, len(EXPRESSIONS)) and p.shift.shape == (3, 2)
    assert (p.scale == 1).all() and (p.roll == 0).all() and (p.pitch == 0).all()
    assert math.isclose(p.light_strength[0].item(), 0.55, rel_tol=1e-6)
