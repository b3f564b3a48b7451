"""Tests of the FR backbones (insightface iResNet, AdaFace IR) and the safe checkpoint readers.

The expected state-dict layouts are written out here from the published key lists, not taken
from our models, so a renamed or reshaped submodule fails the test.
"""

from __future__ import annotations

import argparse
import collections
import os
import pickle
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import torch

from brownface.errors import UserError
from brownface.models.adaface import AdaFaceIR, adaface_ir
from brownface.models.checkpoints import (
    load_adaface_state_dict,
    load_insightface_backbone,
    load_strict,
    load_torch_file,
    sha256_file,
)
from brownface.models.iresnet import IResNet, iresnet

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
WIDTHS = (64, 128, 256, 512)


def bn(prefix: str, channels: int, affine: bool = True) -> dict[str, list[int]]:
    names = BN_KEYS if affine else BN_KEYS[2:]
    return {f"{prefix}.{n}": [] if n == "num_batches_tracked" else [channels] for n in names}


def insightface_shapes(
    layers=(3, 4, 14, 3), widths=WIDTHS, input_size=112, num_features=512
) -> dict[str, list[int]]:
    """arcface_torch iresnet keys and shapes (formats.md section 3)."""
    shapes = {"conv1.weight": [widths[0], 3, 3, 3], **bn("bn1", widths[0])}
    shapes["prelu.weight"] = [widths[0]]
    w_in = widths[0]
    for s, (w, blocks) in enumerate(zip(widths, layers), start=1):
        for j in range(blocks):
            p, cin = f"layer{s}.{j}", (w_in if j == 0 else w)
            shapes.update(bn(f"{p}.bn1", cin))
            shapes[f"{p}.conv1.weight"] = [w, cin, 3, 3]
            shapes.update(bn(f"{p}.bn2", w))
            shapes[f"{p}.prelu.weight"] = [w]
            shapes[f"{p}.conv2.weight"] = [w, w, 3, 3]
            shapes.update(bn(f"{p}.bn3", w))
            if j == 0:  # every stage starts with stride 2
                shapes[f"{p}.downsample.0.weight"] = [w, cin, 1, 1]
                shapes.update(bn(f"{p}.downsample.1", w))
        w_in = w
    side = input_size // 16
    shapes.update(bn("bn2", widths[-1]))
    shapes["fc.weight"] = [num_features, widths[-1] * side * side]
    shapes["fc.bias"] = [num_features]
    shapes.update(bn("features", num_features))
    return shapes


def adaface_shapes(units=(3, 4, 14, 3), input_size=112) -> dict[str, list[int]]:
    """mk-minchul/AdaFace net.py IR keys and shapes (formats.md section 4)."""
    shapes = {"input_layer.0.weight": [64, 3, 3, 3], **bn("input_layer.1", 64)}
    shapes["input_layer.2.weight"] = [64]
    u, w_in = 0, 64
    for w, count in zip(WIDTHS, units):
        for j in range(count):
            p, cin = f"body.{u}", (w_in if j == 0 else w)
            shapes.update(bn(f"{p}.res_layer.0", cin))
            shapes[f"{p}.res_layer.1.weight"] = [w, cin, 3, 3]
            shapes.update(bn(f"{p}.res_layer.2", w))
            shapes[f"{p}.res_layer.3.weight"] = [w]
            shapes[f"{p}.res_layer.4.weight"] = [w, w, 3, 3]
            shapes.update(bn(f"{p}.res_layer.5", w))
            if cin != w:  # otherwise a parameter-free MaxPool2d(1, stride)
                shapes[f"{p}.shortcut_layer.0.weight"] = [w, cin, 1, 1]
                shapes.update(bn(f"{p}.shortcut_layer.1", w))
            u += 1
        w_in = w
    side = input_size // 16
    shapes.update(bn("output_layer.0", 512))
    shapes["output_layer.3.weight"] = [512, 512 * side * side]
    shapes["output_layer.3.bias"] = [512]
    shapes.update(bn("output_layer.4", 512, affine=False))
    return shapes


def random_state(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random but sane values: positive variances, unit ``features`` scale like insightface."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            value = torch.tensor(1000, dtype=torch.int64)
        elif key.endswith("running_var"):
            value = 0.5 + torch.rand(shape, generator=gen)
        elif key == "features.weight":
            value = torch.ones(shape)
        elif len(shape) > 1:  # conv / linear weights
            fan_in = int(np.prod(shape[1:]))
            value = torch.randn(shape, generator=gen) / fan_in**0.5
        elif key.endswith("weight"):  # BN scale or PReLU slope
            value = 1 + 0.1 * torch.randn(shape, generator=gen)
        else:
            value = 0.1 * torch.randn(shape, generator=gen)
        state[key] = value
    return state


def shapes_of(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def images(n: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ----------------------------------------------------------------------------------------------
# insightface iResNet.


def test_iresnet50_loads_an_insightface_state_dict(tmp_path: Path) -> None:
    expected = insightface_shapes()
    model = iresnet("r50")
    assert shapes_of(model) == expected
    path = tmp_path / "backbone.pth"
    torch.save(collections.OrderedDict(random_state(expected)), path)

    outputs = []
    for n in (2, 2, 1):  # three independent loads; the last embeds only the first image
        model = iresnet("iresnet50")
        load_strict(model, load_insightface_backbone(path), source=path.name)
        with torch.no_grad():
            outputs.append(model.eval()(images(2, 112)[:n]))
    assert outputs[0].shape == (2, 512)
    assert outputs[0].dtype == torch.float32 and torch.isfinite(outputs[0]).all()
    assert torch.equal(outputs[0], outputs[1])
    # Another batch size takes other kernels: random weights without training amplify their
    # rounding to ~2e-4 on single elements (seen on AMD EPYC), ~3e-7 over the whole row.
    error = (outputs[2] - outputs[0][:1]).norm() / outputs[0][:1].norm()
    assert error < 1e-5
    assert torch.equal(model.features.weight, torch.ones(512))
    assert not model.features.weight.requires_grad


@pytest.mark.parametrize(
    "name, layers, n_keys",
    [
        ("r18", (2, 2, 2, 2), 187),
        ("iresnet34", (3, 4, 6, 3), 331),
        ("r100", (3, 13, 30, 3), 925),
        ("iresnet200", (6, 26, 60, 6), 1807),
    ],
)
def test_iresnet_architectures_have_the_insightface_layout(name, layers, n_keys) -> None:
    expected = insightface_shapes(layers)
    model = iresnet(name)
    assert len(expected) == n_keys
    assert shapes_of(model) == expected
    n_params = sum(int(np.prod(s)) for k, s in expected.items() if not _is_buffer(k))
    assert sum(p.numel() for p in model.parameters()) == n_params


def _is_buffer(key: str) -> bool:
    return key.rsplit(".", 1)[1] in ("running_mean", "running_var", "num_batches_tracked")


def test_iresnet_names() -> None:
    with pytest.raises(UserError, match="known: .*iresnet50.*r50"):
        iresnet("r42")
    with pytest.raises(UserError, match="multiple of 16"):
        iresnet("r18", input_size=100)


def small_iresnet(**kwargs) -> IResNet:
    return IResNet(
        layers=[1, 1, 1, 1], widths=(16, 32, 64, 128), input_size=64, num_features=128, **kwargs
    )


def test_small_world_iresnet_and_fp16_on_cpu() -> None:
    model = small_iresnet()
    assert model.fc.in_features == 128 * 4 * 4
    assert shapes_of(model) == insightface_shapes((1, 1, 1, 1), (16, 32, 64, 128), 64, 128)
    assert model.eval()(images(3, 64)).shape == (3, 128)
    half = small_iresnet(fp16=True)
    half.load_state_dict(model.state_dict())
    out = half.eval()(images(3, 64))
    assert out.dtype == torch.float32  # autocast is CUDA-only; CPU runs in fp32
    torch.testing.assert_close(out, model(images(3, 64)))
    with pytest.raises(ValueError, match=r"\[B, 3, 64, 64\]"):
        model(images(1, 112))


def test_features_scale_stays_frozen_in_training() -> None:
    model = small_iresnet(dropout=0.2).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1)
    model(images(4, 64)).square().mean().backward()
    optimizer.step()
    assert torch.equal(model.features.weight, torch.ones(128))
    assert not model.features.weight.requires_grad
    assert model.features.bias.grad is not None


# ----------------------------------------------------------------------------------------------
# AdaFace IR.


def test_adaface_ir50_loads_a_lightning_checkpoint(tmp_path: Path) -> None:
    expected = adaface_shapes()
    shortcut_units = sorted({int(k.split(".")[1]) for k in expected if "shortcut_layer.0" in k})
    assert shortcut_units == [3, 7, 21]
    model = adaface_ir("ir_50")
    assert shapes_of(model) == expected
    assert isinstance(model.body[0].shortcut_layer, torch.nn.MaxPool2d)

    state = {"model." + k: v for k, v in random_state(expected).items()}
    state["head.kernel"] = torch.randn(512, 10)
    ckpt = {
        "state_dict": state,
        "hyper_parameters": argparse.Namespace(
            arch="ir_50", lr=np.float64(0.1), output_dir=Path("/runs/x"), milestones=[12, 20]
        ),
        "epoch": 3,
    }
    path = tmp_path / "adaface_ir50.ckpt"
    torch.save(ckpt, path)
    loaded = load_adaface_state_dict(path)
    assert set(loaded) == set(expected)
    load_strict(model, loaded, source=path.name)
    with torch.no_grad():
        embedding, norm = model.eval()(images(2, 112))
    assert embedding.shape == (2, 512) and norm.shape == (2, 1)
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(2))
    assert (norm > 0).all()


def test_adaface_names_and_sizes() -> None:
    assert shapes_of(adaface_ir("ir_18")) == adaface_shapes((2, 2, 2, 2))
    assert shapes_of(AdaFaceIR((2, 2, 2, 2), input_size=224)) == adaface_shapes(
        (2, 2, 2, 2), input_size=224
    )
    with pytest.raises(UserError, match="known: ir_18, ir_34, ir_50, ir_101"):
        adaface_ir("ir_152")
    with pytest.raises(UserError, match="112 or 224"):
        adaface_ir("ir_18", input_size=128)


def test_adaface_checkpoint_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.ckpt"
    torch.save({"epoch": 1}, path)
    with pytest.raises(UserError, match="no 'state_dict'"):
        load_adaface_state_dict(path)
    torch.save({"state_dict": {"head.kernel": torch.zeros(2, 2)}}, path)
    with pytest.raises(UserError, match=r"no 'model\.\*'.*head\.kernel"):
        load_adaface_state_dict(path)


# ----------------------------------------------------------------------------------------------
# Checkpoint readers.


def test_insightface_resume_checkpoint_and_ddp_prefix(tmp_path: Path) -> None:
    model = small_iresnet()
    state = {"module." + k: v for k, v in model.state_dict().items()}
    path = tmp_path / "checkpoint_gpu_0.pt"
    torch.save({"epoch": 2, "state_dict_backbone": state, "state_optimizer": {}}, path)
    loaded = load_insightface_backbone(path)
    assert set(loaded) == set(model.state_dict())
    load_strict(small_iresnet(), loaded, source=path.name)
    torch.save([1, 2], path)
    with pytest.raises(UserError, match="expected an insightface backbone state dict"):
        load_insightface_backbone(path)


def test_mismatch_message_is_one_line() -> None:
    state = small_iresnet().state_dict()
    del state["layer4.0.bn3.weight"]
    state["fc2.weight"] = torch.zeros(3)
    state["fc.weight"] = torch.zeros(128, 4096)
    model = small_iresnet()
    model.arch = "world-iresnet"
    with pytest.raises(UserError) as info:
        load_strict(model, state, source="backbone.pth")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("backbone.pth: does not fit world-iresnet: ")
    assert "missing layer4.0.bn3.weight" in message
    assert "unexpected fc2.weight" in message
    assert "shape fc.weight file [128, 4096] vs model [128, 2048]" in message
    with pytest.raises(UserError, match=r"does not fit iresnet18: missing .*\(\+\d+ more\)"):
        load_strict(iresnet("r18"), state, source="x.pth")


def test_allowed_python_objects_round_trip(tmp_path: Path) -> None:
    obj = {
        "weights": collections.OrderedDict(w=torch.arange(6.0).view(2, 3)),
        "param": torch.nn.Parameter(torch.ones(2)),
        "numpy": np.arange(4, dtype=np.int16),
        "scalar": np.float64(2.5),
        "args": argparse.Namespace(a=1, tags={"x"}, frozen=frozenset([2]), s=slice(1, 3)),
        "counter": collections.Counter([4, 4]),
        "path": Path("/data/x.rec"),
        "z": 1 + 2j,
        "raw": b"\x00\xff",
        "dtype": torch.float16,
    }
    path = tmp_path / "mixed.pt"
    torch.save(obj, path)
    back = load_torch_file(path)
    assert torch.equal(back["weights"]["w"], obj["weights"]["w"])
    assert isinstance(back["param"], torch.nn.Parameter)
    np.testing.assert_array_equal(back["numpy"], obj["numpy"])
    assert back["scalar"] == 2.5 and back["args"].tags == {"x"} and back["args"].s == slice(1, 3)
    assert back["counter"] == {4: 2} and back["z"] == 1 + 2j and back["raw"] == b"\x00\xff"
    assert back["path"] == PurePosixPath("/data/x.rec") and back["dtype"] is torch.float16
    assert len(sha256_file(path)) == 64


class _Payload:
    """Unpickling this would run a shell command."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("writer", ["torch.save", "torch.save legacy", "pickle"])
def test_malicious_pickles_are_refused_without_running(tmp_path: Path, writer: str) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"fc.weight": torch.zeros(2), "x": _Payload(target)}
    if writer == "torch.save":
        torch.save(payload, path)
    elif writer == "torch.save legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(_Payload(target)))
    for load in (load_torch_file, load_insightface_backbone, load_adaface_state_dict):
        with pytest.raises(UserError, match=r"refusing to load (posix|nt|os)\.system") as info:
            load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not target.exists()


class _Plain:
    """An ordinary class: harmless, but not on the allow-list."""


def test_unknown_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.pth"
    torch.save({"obj": _Plain()}, path)
    with pytest.raises(UserError, match="refusing to load"):
        load_torch_file(path)


def test_missing_and_damaged_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such checkpoint file"):
        load_torch_file(tmp_path / "nope.pth")
    with pytest.raises(UserError, match="cannot read"):
        sha256_file(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint\n" * 10)
    good = tmp_path / "good.pth"
    for legacy in (False, True):
        torch.save({"w": torch.randn(64, 64)}, good, _use_new_zipfile_serialization=not legacy)
        data = good.read_bytes()
        (tmp_path / f"cut{legacy}.pth").write_bytes(data[: len(data) // 2])
    for path in (junk, tmp_path / "cutFalse.pth", tmp_path / "cutTrue.pth"):
        with pytest.raises(UserError) as info:
            load_torch_file(path)
        assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
