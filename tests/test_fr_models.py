"""FR model specs from the config load real-format checkpoints and embed aligned crops."""

import argparse

import torch

from brownface import config
from brownface.models.adaface import adaface_ir
from brownface.models.fr import load_fr, reference_fr_spec
from brownface.models.iresnet import iresnet


def test_default_reference_fr_is_the_world_model():
    spec = reference_fr_spec(config.validate({})["reference_fr"])
    assert spec.kind == "brownface" and spec.checkpoint.endswith("reference_fr/model.pt")


def test_insightface_backbone_loads_through_the_config_spec(tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save(iresnet("r18").state_dict(), path)  # insightface ships a bare state dict
    section = config.validate(
        {"reference_fr": {"kind": "iresnet", "arch": "iresnet18", "checkpoint": str(path)}}
    )
    model = load_fr(reference_fr_spec(section["reference_fr"]))
    x = torch.rand(2, 3, 64, 64) * 2 - 1  # any size: resized to the 112 crop
    with torch.no_grad():
        emb = model(x)
    assert emb.shape == (2, 512) and not model.training
    assert all(not p.requires_grad for p in model.parameters())


def test_adaface_ckpt_loads_with_bgr_and_returns_raw_embeddings(tmp_path):
    net = adaface_ir("ir_18").eval()
    ckpt = {
        "state_dict": {
            **{f"model.{k}": v for k, v in net.state_dict().items()},
            "head.kernel": torch.zeros(512, 3),
        },
        "hyper_parameters": argparse.Namespace(arch="ir_18"),
    }
    path = tmp_path / "adaface_ir18.ckpt"
    torch.save(ckpt, path)
    spec = {"kind": "adaface", "arch": "ir_18", "checkpoint": str(path), "colour": "bgr"}
    section = config.validate({"reference_fr": spec})
    model = load_fr(reference_fr_spec(section["reference_fr"]))
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        unit, norm = net(x.flip(1))  # AdaFace wants BGR
        # Channels-last convolutions agree with NCHW to float32 round-off (relative 1e-6).
        torch.testing.assert_close(model(x), unit * norm, rtol=1e-5, atol=1e-3)
