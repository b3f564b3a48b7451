"""The AdaFace-style augmenter: reproducible, range-preserving, each step doing what it says."""

import math

import pytest
import torch

from brownface.train.augment import Augmenter, color_jitter, crop_box, low_resolution


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(seed: int = 0, size: int = 32) -> torch.Tensor:
    """A textured image with every pixel in [0.1, 1): nothing is black before the crop."""
    return torch.rand(3, size, size, generator=_gen(seed)) * 0.9 + 0.1


ALL = Augmenter(p_crop=1, p_lowres=1, p_photo=1, p_flip=1)


@pytest.mark.parametrize("seed", range(8))
def test_output_shape_dtype_range(seed):
    image = _image(seed)
    for augmenter in (Augmenter(), ALL):
        out = augmenter(image, _gen(seed))
        assert out.shape == image.shape and out.dtype == image.dtype
        assert out.min() >= 0 and out.max() <= 1


def test_same_seed_same_output_and_input_untouched():
    image = _image(1)
    before = image.clone()
    a, b = ALL(image, _gen(5)), ALL(image, _gen(5))
    assert torch.equal(a, b)
    assert torch.equal(image, before)
    assert not torch.equal(a, ALL(image, _gen(6)))


def test_zero_probabilities_are_identity():
    image = _image(2)
    none = Augmenter(p_crop=0, p_lowres=0, p_photo=0, p_flip=0)
    for seed in range(5):
        assert torch.equal(none(image, _gen(seed)), image)


@pytest.mark.parametrize("seed", range(10))
def test_crop_blacks_out_everything_outside_the_box(seed):
    image = _image(seed)
    out = Augmenter(p_crop=1, p_lowres=0, p_photo=0, p_flip=0)(image, _gen(seed))
    replay = _gen(seed)
    torch.rand((), generator=replay)  # the crop gate
    top, left, h, w = crop_box(32, 32, replay)
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[top : top + h, left : left + w] = True
    assert torch.equal(out[:, inside], image[:, inside])
    assert (out[:, ~inside] == 0).all()
    assert 0.2 * 32 * 32 * 0.8 <= h * w <= 32 * 32  # area fraction 0.2-1 (rounding slack)


def test_crop_box_draws_like_random_resized_crop():
    for seed in range(200):
        top, left, h, w = crop_box(112, 112, _gen(seed))
        assert 0 <= top and top + h <= 112 and 0 <= left and left + w <= 112
        assert 0.19 <= h * w / 112**2 <= 1.0
        assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05


def test_crop_box_falls_back_to_a_central_box():
    # A 4x100 strip: no box of aspect 3/4-4/3 with 20-100 % of the area fits, so the fallback
    # takes the full height and clips the width to the largest allowed aspect.
    assert crop_box(4, 100, _gen(0)) == (0, (100 - 5) // 2, 4, 5)
    assert crop_box(30, 30, _gen(0), scale=(2.0, 3.0)) == (0, 0, 30, 30)


def test_flip():
    image = _image(3)
    out = Augmenter(p_crop=0, p_lowres=0, p_photo=0, p_flip=1)(image, _gen(0))
    assert torch.equal(out, image.flip(-1))


def test_low_resolution_changes_the_image_but_keeps_its_shape():
    image = _image(4)
    changed = 0
    for seed in range(6):
        out = low_resolution(image, _gen(seed))
        assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
        changed += not torch.allclose(out, image, atol=1e-3)
    assert changed >= 5
    out = Augmenter(p_crop=0, p_lowres=1, p_photo=0, p_flip=0)(image, _gen(0))
    assert out.shape == image.shape and not torch.equal(out, image)


def test_low_resolution_of_a_constant_image_is_constant():
    image = torch.full((3, 20, 24), 0.25)
    for seed in range(6):
        assert torch.allclose(low_resolution(image, _gen(seed)), image, atol=1e-6)


def test_color_jitter_keeps_range_and_changes_colours():
    image = torch.rand(3, 16, 16, generator=_gen(7))
    image[:, 0, 0], image[:, 0, 1] = 0.0, 1.0  # extremes present
    for seed in range(6):
        out = color_jitter(image, _gen(seed))
        assert out.min() >= 0 and out.max() <= 1 and out.shape == image.shape
        assert not torch.allclose(out, image)


def test_color_jitter_on_gray_is_brightness_only():
    # On a flat gray image contrast and saturation change nothing (up to the luma weights
    # summing to 0.9999), so the output is the brightness factor times the input.
    image = torch.full((3, 8, 8), 0.4)
    replay = _gen(3)
    torch.randperm(3, generator=replay)
    brightness = 0.5 + float(torch.rand((), generator=replay))
    out = color_jitter(image, _gen(3))
    assert torch.allclose(out, torch.full_like(image, min(0.4 * brightness, 1)), atol=1e-3)


def test_batch_matches_single_calls_and_rejects_bad_input():
    images = torch.stack([_image(s) for s in range(3)])
    out = ALL.batch(images, [_gen(s) for s in range(3)])
    for s in range(3):
        assert torch.equal(out[s], ALL(images[s], _gen(s)))
    with pytest.raises(ValueError, match="one generator per image"):
        ALL.batch(images, [_gen(0)])
    with pytest.raises(ValueError, match="float"):
        ALL((images[0] * 255).to(torch.uint8), _gen(0))
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        ALL(images, _gen(0))


def test_gates_fire_at_their_rates():
    augmenter = Augmenter(p_crop=0, p_lowres=0, p_photo=0, p_flip=0.5)
    image = _image(5)
    flips = sum(torch.equal(augmenter(image, _gen(s)), image.flip(-1)) for s in range(400))
    assert abs(flips / 400 - 0.5) < 4 * math.sqrt(0.25 / 400)
