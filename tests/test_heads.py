"""Margin heads: target logits against the formulas, AdaFace's norm EMAs, gradients, build_head."""

import math

import pytest
import torch
from torch.nn import functional as F

from brownface.errors import UserError
from brownface.train.heads import EPS, AdaFace, ArcFace, CosFace, build_head


def _unit(cos: float, norm: float = 1.0) -> list[float]:
    """A 2-D vector of length ``norm`` whose cosine with (1, 0) is ``cos``."""
    return [norm * cos, norm * math.sqrt(1 - cos * cos)]


def _head_2d(head):
    """Class 0 centre (1, 0), class 1 centre (0, 1) (given unnormalised to test the renorm)."""
    head.kernel.data = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    return head


def _logits(head, rows, labels):
    emb = torch.tensor(rows, dtype=torch.float32)
    return head(emb, torch.tensor(labels, dtype=torch.int64))


def test_arcface_target_and_non_target_logits():
    head = _head_2d(ArcFace(2, 2))
    logits = _logits(head, [_unit(0.6, norm=7.0)], [0])
    assert logits[0, 0].item() == pytest.approx(64 * math.cos(math.acos(0.6) + 0.5), rel=1e-5)
    assert logits[0, 1].item() == pytest.approx(64 * 0.8, rel=1e-5)


def test_arcface_past_pi_uses_the_linear_fallback():
    head = _head_2d(ArcFace(2, 2))
    cos_y = -0.95  # theta_y + 0.5 > pi
    assert math.acos(cos_y) + 0.5 > math.pi and cos_y < math.cos(math.pi - 0.5)
    logits = _logits(head, [_unit(cos_y)], [0])
    expected = 64 * (cos_y - 0.5 * math.sin(math.pi - 0.5))
    assert logits[0, 0].item() == pytest.approx(expected, rel=1e-5)


def test_cosface_target_logit():
    head = _head_2d(CosFace(2, 2))
    logits = _logits(head, [_unit(0.6, norm=3.0), _unit(0.6)], [0, 1])
    assert logits[0, 0].item() == pytest.approx(64 * (0.6 - 0.35), rel=1e-5)
    assert logits[0, 1].item() == pytest.approx(64 * 0.8, rel=1e-5)
    assert logits[1, 1].item() == pytest.approx(64 * (0.8 - 0.35), rel=1e-5)
    assert logits[1, 0].item() == pytest.approx(64 * 0.6, rel=1e-5)


def _adaface_expected(cos_y, norm, mean, std, m=0.4, h=0.333, s=64.0):
    z = max(-1.0, min(1.0, (norm - mean) / (std + EPS) * h))
    theta = min(max(math.acos(cos_y) - m * z, EPS), math.pi - EPS)
    return s * (math.cos(theta) - (m + m * z))


@pytest.mark.parametrize(
    ("norm", "mean", "std", "cos_y"),
    [
        (50.0, 20.0, 100.0, 0.6),  # the initial buffers: small positive z
        (5.0, 20.0, 10.0, 0.6),  # negative z
        (50.0, 10.0, 5.0, 0.6),  # z clipped to 1
        (1e-5, 30.0, 5.0, 0.6),  # norm clipped to 0.001, z clipped to -1
        (50.0, 10.0, 5.0, 0.999),  # shifted angle clamped to EPS
    ],
)
def test_adaface_eval_target_logit(norm, mean, std, cos_y):
    head = _head_2d(AdaFace(2, 2)).eval()
    head.batch_mean.fill_(mean)
    head.batch_std.fill_(std)
    logits = _logits(head, [_unit(cos_y, norm)], [0])
    expected = _adaface_expected(cos_y, max(norm, 0.001), mean, std)
    assert logits[0, 0].item() == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert logits[0, 1].item() == pytest.approx(64 * math.sqrt(1 - cos_y**2), rel=1e-4)
    assert head.batch_mean.item() == mean and head.batch_std.item() == std  # eval: no update


def test_adaface_defaults_and_initial_buffers():
    head = AdaFace(8, 4)
    assert (head.m, head.h, head.s, head.t_alpha) == (0.4, 0.333, 64.0, 0.01)
    assert head.batch_mean.tolist() == [20.0] and head.batch_std.tolist() == [100.0]
    assert {"kernel", "batch_mean", "batch_std"} <= set(head.state_dict())


def test_adaface_training_updates_the_emas_then_uses_them():
    head = _head_2d(AdaFace(2, 2, t_alpha=0.1)).train()
    norms = torch.tensor([10.0, 40.0])
    logits = _logits(head, [_unit(0.6, 10.0), _unit(0.6, 40.0)], [0, 0])
    mean = 0.1 * norms.mean().item() + 0.9 * 20.0
    std = 0.1 * norms.std(unbiased=True).item() + 0.9 * 100.0
    assert head.batch_mean.item() == pytest.approx(mean, rel=1e-6)
    assert head.batch_std.item() == pytest.approx(std, rel=1e-6)
    for row, norm in enumerate(norms.tolist()):
        expected = _adaface_expected(0.6, norm, mean, std)
        assert logits[row, 0].item() == pytest.approx(expected, rel=1e-4)
    # A batch of one has no std: the EMAs stay where they are.
    _logits(head, [_unit(0.6, 5.0)], [1])
    assert head.batch_mean.item() == pytest.approx(mean, rel=1e-6)
    assert head.batch_std.item() == pytest.approx(std, rel=1e-6)


@pytest.mark.parametrize("name", ["arcface", "cosface", "adaface"])
def test_gradients_flow_to_embeddings_and_kernel(name):
    torch.manual_seed(0)
    head = build_head(name, 16, 10).train()
    emb = torch.randn(8, 16, requires_grad=True)
    labels = torch.randint(0, 10, (8,))
    F.cross_entropy(head(emb, labels), labels).backward()
    for grad in (emb.grad, head.kernel.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("name", "kwargs"), [("arcface", {}), ("cosface", {}), ("adaface", {"h": 0.0})]
)
def test_gradients_match_finite_differences(name, kwargs):
    # AdaFace detaches the norms on purpose, so finite differences in the embeddings only agree
    # with autograd when the norm does not matter (h = 0); the kernel is checked with h > 0 below.
    torch.manual_seed(1)
    head = build_head(name, 4, 3, **kwargs).double().eval()  # eval: AdaFace's EMAs stay fixed
    emb = (torch.randn(5, 4, dtype=torch.float64) * 3).requires_grad_()
    kernel = head.kernel.detach().clone().requires_grad_()
    labels = torch.tensor([0, 1, 2, 0, 1])

    def logits(e, k):
        return torch.func.functional_call(head, {"kernel": k}, (e, labels))

    assert torch.autograd.gradcheck(logits, (emb, kernel))


def test_adaface_kernel_gradient_matches_finite_differences():
    torch.manual_seed(2)
    head = AdaFace(4, 3).double().eval()
    head.batch_mean.fill_(3.0)
    head.batch_std.fill_(2.0)
    emb = torch.randn(5, 4, dtype=torch.float64) * 3
    kernel = head.kernel.detach().clone().requires_grad_()
    labels = torch.tensor([0, 1, 2, 0, 1])

    def logits(k):
        return torch.func.functional_call(head, {"kernel": k}, (emb, labels))

    assert torch.autograd.gradcheck(logits, (kernel,))


def test_arcface_margin_is_not_straight_through():
    head = _head_2d(ArcFace(2, 2))
    cos = torch.tensor(0.6, requires_grad=True)
    emb = torch.stack([cos, (1 - cos * cos).sqrt()])[None]
    head(emb, torch.tensor([0]))[0, 0].backward()
    # d/dcos of s*cos(acos(cos) + m) = s * sin(theta + m) / sin(theta)
    theta = math.acos(0.6)
    assert cos.grad.item() == pytest.approx(64 * math.sin(theta + 0.5) / math.sin(theta), rel=1e-4)


@pytest.mark.parametrize("name", ["arcface", "cosface", "adaface"])
def test_heads_run_in_full_precision_under_autocast(name):
    torch.manual_seed(3)
    head = build_head(name, 16, 10).eval()
    emb, labels = torch.randn(4, 16), torch.tensor([1, 2, 3, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = head(emb.bfloat16(), labels)
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed, head(emb.bfloat16().float(), labels))


@pytest.mark.parametrize("name", ["arcface", "cosface", "adaface"])
def test_kernel_columns_have_unit_norm_after_init(name):
    head = build_head(name, 32, 50)
    assert head.kernel.shape == (32, 50)
    assert torch.allclose(head.kernel.norm(dim=0), torch.ones(50), atol=1e-5)


def test_build_head_defaults():
    arc, cos = build_head("arcface", 8, 4), build_head("cosface", 8, 4)
    assert (arc.s, arc.m) == (64.0, 0.5) and (cos.s, cos.m) == (64.0, 0.35)
    assert isinstance(build_head("adaface", 8, 4, m=0.5, h=0.0), AdaFace)


def test_build_head_errors():
    with pytest.raises(UserError, match="arcface, cosface, adaface"):
        build_head("sphereface", 8, 4)
    with pytest.raises(UserError, match="unknown option.*h"):
        build_head("arcface", 8, 4, h=0.3)


def test_shape_errors():
    head = CosFace(8, 4)
    with pytest.raises(ValueError, match=r"\[B, 8\]"):
        head(torch.zeros(2, 7), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels"):
        head(torch.zeros(2, 8), torch.zeros(3, dtype=torch.int64))
