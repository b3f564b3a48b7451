"""StyleGAN2 in plain PyTorch: NVIDIA's numbers, pickles read without running them, conversions."""

import argparse
import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from nvidia_format import random_net, tiny_config, write_network_pickle
from PIL import Image

from brownface import cli, config
from brownface.errors import UserError
from brownface.models import stylegan2 as sg
from brownface.models.generator import FixedBox, generator_spec, load_generator
from brownface.models.stylegan2_checkpoints import (
    read_generator_pt,
    read_stylegan2,
)

DATA = Path(__file__).parent / "data"


# ---------------------------------------------------------------------------------------------
# The math, against NVIDIA's own code.


def test_images_equal_nvidias_reference_ops():
    """tests/data/nvidia_tiny32_reference.npz: a random-weight 32 px generator (fp16 layers and
    conv_clamp 256 in its config) built, pickled and run by NVIDIA's stylegan2-ada-pytorch on a
    CPU in fp32 (force_fp32, const and no noise, psi 0.7 with and without a cutoff). Only the
    weights and the outputs are stored, not NVIDIA's code."""
    ref = np.load(DATA / "nvidia_tiny32_reference.npz")
    cfg = sg.StyleGAN2Config.from_dict(json.loads(str(ref["config"])))
    assert cfg.num_fp16_res == 2 and cfg.conv_clamp == 256
    net = sg.StyleGAN2(cfg).eval()
    prefix = "weight/"
    state = {k[len(prefix) :]: torch.from_numpy(ref[k]) for k in ref.files if k.startswith(prefix)}
    net.load_state_dict(state)
    z = torch.from_numpy(ref["nvidia/z"])
    with torch.no_grad():
        ws = net.mapping(z, truncation_psi=0.7)
        assert torch.equal(net.mapping(z), torch.from_numpy(ref["nvidia/ws_notrunc"]))
        assert torch.equal(ws, torch.from_numpy(ref["nvidia/ws"]))
        cut4 = net.mapping(z, truncation_psi=0.7, truncation_cutoff=4)
        assert torch.equal(cut4, torch.from_numpy(ref["nvidia/ws_cut4"]))
        for mode, key in [("const", "img_const"), ("none", "img_none")]:
            image = net.synthesis(ws, mode)
            expected = torch.from_numpy(ref[f"nvidia/{key}"])
            assert (image - expected).abs().max() <= 1e-5, mode  # measured: 0 (bit-equal)


def test_modulated_conv_is_the_per_sample_definition():
    """Grouped conv over the batch = scale inputs by s, convolve, scale outputs by d."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 8, 8, generator=gen, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, generator=gen, dtype=torch.float64)
    styles = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    f = sg.fir_filter([1, 3, 3, 1]).double()
    for b in range(3):
        wb = weight * styles[b][None, :, None, None]
        d = (wb.square().sum([1, 2, 3]) + 1e-8).rsqrt()
        plain = torch.nn.functional.conv2d(x[b : b + 1], wb, padding=1) * d[None, :, None, None]
        got = sg.modulated_conv2d(x, weight, styles)[b : b + 1]
        torch.testing.assert_close(got, plain, rtol=0, atol=1e-12)
        # Up: the transposed conv + FIR equals zero insertion, the FIR (gain 4), then the conv
        # with the spatially flipped kernel, cropped to 2H (the same linear map).
        up = sg.modulated_conv2d(x, weight, styles, up=True, resample_filter=f)[b : b + 1]
        zi = sg.upsample2d(x[b : b + 1], f)
        alt = torch.nn.functional.conv2d(zi, wb.flip([2, 3]), padding=1) * d[None, :, None, None]
        assert up.shape == (1, 5, 16, 16)
        # A different order of the same sums: equal up to round-off away from the border.
        torch.testing.assert_close(up[..., 2:-2, 2:-2], alt[..., 2:-2, 2:-2], rtol=0, atol=1e-9)


def test_modulating_the_activations_is_the_same_map_and_gradient():
    """fused_modconv false (conv(x * s, W) * d, NVIDIA's training path) = the grouped
    convolution, plain and 2x up, in float64; a whole synthesis and its gradient to w agree
    in float32 to round-off."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 8, 8, generator=gen, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, generator=gen, dtype=torch.float64)
    styles = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    f = sg.fir_filter([1, 3, 3, 1]).double()
    for up, demodulate in ((False, True), (True, True), (False, False)):
        kw = dict(demodulate=demodulate, up=up, resample_filter=f)
        fused = sg.modulated_conv2d(x, weight, styles, **kw)
        torch.testing.assert_close(
            sg.modulated_conv2d(x, weight, styles, fused=False, **kw), fused, rtol=0, atol=1e-12
        )
    net = random_net(tiny_config())
    w = net.mapping(torch.randn(2, 32, generator=gen), 0.7).requires_grad_(True)
    outs = []
    for fused in (True, False):
        img = net.use_fused_modconv(fused).synthesis(w)
        (grad,) = torch.autograd.grad(img.square().sum(), w)
        outs.append((img.detach(), grad))
    (img_a, grad_a), (img_b, grad_b) = outs
    assert not torch.equal(img_a, img_b)  # a different order of the same sums
    torch.testing.assert_close(img_b, img_a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad_b, grad_a, rtol=1e-3, atol=1e-3 * grad_a.abs().max().item())


def test_the_clamp_is_recorded_only_when_it_clips():
    """clamp_recorded: the same values and gradients as torch.clamp, inside and across the
    limits."""
    for scale in (1.0, 400.0):  # inside +-256, and clipping
        x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * scale
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        ya, yb = sg.clamp_recorded(a, 256.0), b.clamp(-256.0, 256.0)
        assert torch.equal(ya, yb)
        g = torch.randn_like(x)
        (ga,), (gb,) = torch.autograd.grad(ya, a, g), torch.autograd.grad(yb, b, g)
        assert torch.equal(ga, gb)
        assert (ya is a) == (scale == 1.0)


def test_shapes_at_256_and_1024():
    for res, num_ws, base, params in [(256, 14, 16384, 24_767_458), (1024, 18, 32768, 30_370_060)]:
        cfg = sg.StyleGAN2Config(img_resolution=res, channel_base=base)
        with torch.device("meta"):
            net = sg.StyleGAN2(cfg)
            assert cfg.num_ws == num_ws and sg.parameter_count(net) == params
            ws = net.mapping(torch.randn(2, 512), truncation_psi=0.7)
            assert ws.shape == (2, num_ws, 512)
            assert net.synthesis(ws).shape == (2, 3, res, res)
        names = list(net.state_dict())
        assert names[0] == "synthesis.b4.const" and names[-1] == "mapping.fc7.bias"
        assert len(names) == {256: 144, 1024: 182}[res]


def test_gradients_reach_w_through_synthesis_and_the_crop(tmp_path):
    gen = _generator(tmp_path)
    w = gen.mapping(torch.randn(2, 32), truncation_psi=0.7).requires_grad_(True)
    crop = gen.fr_crop(gen.synthesis(w), 24)
    assert crop.shape == (2, 3, 24, 24)
    crop.square().sum().backward()
    assert torch.isfinite(w.grad).all() and (w.grad.abs().sum(1) > 0).all()


def test_noise_modes(tmp_path):
    net = random_net(tiny_config())
    ws = net.mapping(torch.randn(2, 32))
    with torch.no_grad():
        const = net.synthesis(ws, "const")
        assert torch.equal(const, net.synthesis(ws, "const"))  # deterministic
        torch.manual_seed(1)
        a = net.synthesis(ws, "random")
        torch.manual_seed(2)
        assert not torch.equal(a, net.synthesis(ws, "random"))
        assert not torch.equal(const, net.synthesis(ws, "none"))
    with pytest.raises(ValueError, match="noise_mode"):
        net.synthesis(ws, "loud")


def test_the_paper_crop_box():
    assert sg.ffhq_fr_box(256) == FixedBox(21, 20, 236, 235)
    assert sg.ffhq_fr_box(1024) == FixedBox(86, 83, 944, 942)
    images = torch.rand(1, 3, 256, 256)
    out = FixedBox(21, 20, 236, 235).apply(images, 112)
    expected = torch.nn.functional.interpolate(
        images[..., 20:235, 21:236], size=(112, 112), mode="bicubic", antialias=True
    )
    assert torch.equal(out, expected)
    with pytest.raises(UserError, match="outside the 32x32 frame"):
        FixedBox(21, 20, 236, 235).apply(torch.rand(1, 3, 32, 32), 16)


# ---------------------------------------------------------------------------------------------
# NVIDIA pickles, read without running anything.


@pytest.mark.parametrize("protocol", [3, 4])
def test_nvidia_pickles_rebuild_the_exact_tensors(tmp_path, protocol):
    net = random_net(tiny_config())
    marker = tmp_path / "module_src_ran"
    path = write_network_pickle(net, tmp_path / "G.pkl", protocol=protocol, marker=marker)
    assert "torch_utils.persistence" not in __import__("sys").modules
    weights = read_stylegan2(path)
    assert weights.config == net.config and weights.source_format == "nvidia-pickle"
    expected = net.state_dict()
    assert list(weights.state_dict) == list(expected)
    for key, value in expected.items():
        assert torch.equal(weights.state_dict[key], value), key
    z = torch.randn(3, 32)
    with torch.no_grad():
        assert torch.equal(weights.build(path)(z, 0.7), net(z, 0.7))
    assert not marker.exists()  # module_src was never executed
    assert "torch_utils.persistence" not in __import__("sys").modules


def test_numpy_1_scalars_load_too(tmp_path):
    """NumPy < 2 writes its scalars as numpy.core.multiarray.scalar; NumPy 2 as numpy._core."""
    net = random_net(tiny_config())
    data = write_network_pickle(net, tmp_path / "G.pkl", protocol=3).read_bytes()
    assert b"numpy._core.multiarray\nscalar" in data
    old = data.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar")
    (tmp_path / "old.pkl").write_bytes(old)
    assert read_stylegan2(tmp_path / "old.pkl").config == net.config


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with path.open("wb") as f:
        pickle.dump({"G_ema": _Exploit(marker)}, f, protocol=3)
    with pytest.raises(
        UserError, match=r"refusing to load (posix|os)\.system from a network pickle"
    ):
        read_stylegan2(path)
    assert not marker.exists()


def _tiny_pickle(tmp_path: Path, **kwargs) -> Path:
    return write_network_pickle(random_net(tiny_config()), tmp_path / "G.pkl", **kwargs)


def test_bad_generator_files_are_one_line(tmp_path):
    good = _tiny_pickle(tmp_path).read_bytes()
    cases = {
        "text.pkl": (b"not a pickle at all", "not a generator checkpoint"),
        "cut.pkl": (good[: len(good) // 2], "truncated network pickle"),
        "empty.pkl": (b"", "empty file"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UserError, match=message):
            read_stylegan2(tmp_path / name)
    with (tmp_path / "no_ema.pkl").open("wb") as f:
        pickle.dump({"G": None, "D": None}, f, protocol=3)
    with pytest.raises(UserError, match="no 'G_ema' network in the pickle"):
        read_stylegan2(tmp_path / "no_ema.pkl")
    cond = write_network_pickle(random_net(tiny_config()), tmp_path / "cond.pkl", c_dim=10)
    with pytest.raises(UserError, match=r"conditional StyleGAN2 generators \(c_dim = 10\)"):
        read_stylegan2(cond)
    with pytest.raises(UserError, match="no such generator checkpoint"):
        read_stylegan2(tmp_path / "missing.pkl")
    # A TensorFlow-era pickle: (G, D, Gs) of dnnlib.tflib.network.Network objects.
    tf = b"\x80\x03cdnnlib.tflib.network\nNetwork\n)\x81}b."
    (tmp_path / "tf.pkl").write_bytes(tf)
    with pytest.raises(UserError, match="a TensorFlow-era StyleGAN2 pickle"):
        read_stylegan2(tmp_path / "tf.pkl")


def test_stylegan3_is_named(tmp_path):
    net = random_net(tiny_config())
    net.synthesis.add_module("L0_36_512", torch.nn.Linear(2, 2))  # an alias-free layer name
    path = write_network_pickle_any(net, tmp_path / "sg3.pkl")
    with pytest.raises(UserError, match=r"StyleGAN3 \(alias-free\) generators are not supported"):
        read_stylegan2(path)


def write_network_pickle_any(net, path):
    import nvidia_format

    nvidia_format._NVIDIA_CLASS.setdefault(torch.nn.Linear, "SynthesisLayer")
    return write_network_pickle(net, path)


# ---------------------------------------------------------------------------------------------
# rosinality and generator.pt.


def to_rosinality(net: sg.StyleGAN2) -> dict:
    """A rosinality ``train.py`` checkpoint holding ``net`` (notes section 2's key table)."""
    sd = net.state_dict()
    cfg = net.config
    g = {
        f"style.{i + 1}.{p}": sd[f"mapping.fc{i}.{p}"]
        for i in range(cfg.mapping_layers)
        for p in ("weight", "bias")
    }
    g["input.input"] = sd["synthesis.b4.const"][None]

    def layer(src, dst, noise):
        w = sd[f"{dst}.weight"]
        g[f"{src}.conv.weight"] = (w * math.sqrt(w[0].numel()))[None]
        g[f"{src}.conv.modulation.weight"] = sd[f"{dst}.affine.weight"]
        g[f"{src}.conv.modulation.bias"] = sd[f"{dst}.affine.bias"]
        g[f"{src}.noise.weight"] = sd[f"{dst}.noise_strength"].reshape(1)
        g[f"{src}.activate.bias"] = sd[f"{dst}.bias"]
        g[noise] = sd[f"{dst}.noise_const"][None, None]

    def torgb(src, dst):
        g[f"{src}.conv.weight"] = sd[f"{dst}.weight"][None]
        g[f"{src}.conv.modulation.weight"] = sd[f"{dst}.affine.weight"]
        g[f"{src}.conv.modulation.bias"] = sd[f"{dst}.affine.bias"]
        g[f"{src}.bias"] = sd[f"{dst}.bias"].reshape(1, -1, 1, 1)

    layer("conv1", "synthesis.b4.conv1", "noises.noise_0")
    torgb("to_rgb1", "synthesis.b4.torgb")
    for k, res in enumerate(cfg.block_resolutions[1:]):
        layer(f"convs.{2 * k}", f"synthesis.b{res}.conv0", f"noises.noise_{2 * k + 1}")
        layer(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", f"noises.noise_{2 * k + 2}")
        g[f"convs.{2 * k}.conv.blur.kernel"] = sg.fir_filter([1, 3, 3, 1]) * 4
        torgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")
        g[f"to_rgbs.{k}.upsample.kernel"] = sg.fir_filter([1, 3, 3, 1]) * 4
    return {
        "g_ema": g,
        "latent_avg": sd["mapping.w_avg"],
        "args": argparse.Namespace(size=cfg.img_resolution),
    }


def test_rosinality_round_trip(tmp_path):
    net = random_net(tiny_config(conv_clamp=None, num_fp16_res=0))
    torch.save(to_rosinality(net), tmp_path / "550000.pt")
    weights = read_stylegan2(tmp_path / "550000.pt")
    assert weights.source_format == "rosinality" and weights.config == net.config
    for key, value in net.state_dict().items():
        torch.testing.assert_close(weights.state_dict[key], value, rtol=1e-6, atol=0, msg=key)
    z = torch.randn(2, 32)
    with torch.no_grad():
        torch.testing.assert_close(weights.build("x")(z, 0.7), net(z, 0.7), rtol=0, atol=1e-5)
    torch.save({"g": {}}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="no 'g_ema' state dict"):
        read_stylegan2(tmp_path / "other.pt")


def test_converted_generator_pt_gives_identical_images(tmp_path, capsys):
    net = random_net(tiny_config())
    pkl = write_network_pickle(net, tmp_path / "G.pkl")
    assert cli.main(["convert", str(pkl), "--out", str(tmp_path / "generator.pt")]) == 0
    assert "StyleGAN2 32x32 from nvidia-pickle (66,723 parameters)" in capsys.readouterr().out
    data = torch.load(tmp_path / "generator.pt", weights_only=True)  # plain data only
    assert data["format"] == "brownface-generator" and data["source"]["format"] == "nvidia-pickle"
    converted = read_generator_pt(tmp_path / "generator.pt")
    z = torch.randn(3, 32)
    with torch.no_grad():
        assert torch.equal(converted.build("x")(z, 0.7), net(z, 0.7))
    assert cli.main(["inspect", str(tmp_path / "generator.pt"), str(pkl)]) == 0
    out = capsys.readouterr().out
    assert "StyleGAN2 32x32 generator (brownface-generator)" in out
    assert "StyleGAN2 32x32 generator (nvidia-pickle)" in out
    assert "parameters: 66,723" in out and "sha256: " in out and "conv_clamp: 256.0" in out


# ---------------------------------------------------------------------------------------------
# The generator kind.


def _generator(tmp_path: Path, **generator):
    pkl = write_network_pickle(random_net(tiny_config()), tmp_path / "G.pkl")
    cfg = config.validate({"generator": {"kind": "stylegan2", "checkpoint": str(pkl)} | generator})
    return load_generator(generator_spec(cfg))


def test_the_stylegan2_kind(tmp_path, capsys):
    gen = _generator(tmp_path, crop={"box": [2, 2, 30, 30]})
    assert gen.spec.provenance()["checkpoint_sha256"] and gen.spec.options == {"precision": "fp32"}
    assert (gen.z_dim, gen.w_dim, gen.img_resolution, gen.num_ws) == (32, 32, 32, 8)
    w = gen.mapping(torch.randn(2, 32), truncation_psi=0.7)
    assert w.shape == (2, 32)
    assert torch.equal(gen.synthesis(w), gen.synthesis(w[:, None].expand(2, 8, 32)))
    assert all(m.fused_modconv for m in gen.net.modules() if hasattr(m, "fused_modconv"))
    unfused = _generator(tmp_path, crop={"box": [2, 2, 30, 30]}, fused_modconv=False)
    assert unfused.spec.options == {"precision": "fp32", "fused_modconv": False}
    assert not any(m.fused_modconv for m in unfused.net.modules() if hasattr(m, "fused_modconv"))
    torch.testing.assert_close(unfused.synthesis(w), gen.synthesis(w), rtol=1e-4, atol=1e-5)
    assert gen.fr_crop(gen.synthesis(w), 16).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\[B, 32\] or \[B, 8, 32\]"):
        gen.synthesis(w[:, None])
    with pytest.raises(
        UserError, match="config generator.checkpoint: the stylegan2 generator needs"
    ):
        generator_spec(config.validate({"generator": {"kind": "stylegan2"}}))
    out = tmp_path / "face.png"
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("generator: {kind: world}\n")
    args = ["generate", "--config", str(cfg_path), "--checkpoint", str(tmp_path / "G.pkl")]
    assert cli.main(args + ["--seed", "3", "--out", str(out)]) == 0
    assert "stylegan2, seed 3" in capsys.readouterr().out and out.stat().st_size > 0


def test_every_stage_runs_on_a_stylegan2_pickle(tmp_path, world, capsys):
    """Identities, variations, render, projection and edit with kind stylegan2 on a random
    32 px generator written as an NVIDIA pickle (the world only supplies Multi-PIE photos)."""
    from worldkit import small_fr_file

    from brownface.covariates.edit import edit_image
    from brownface.covariates.projection import ProjectionParams
    from brownface.covariates.reader import SubsetRules
    from brownface.covariates.stages import project_multipie
    from brownface.covariates.svm import COVARIATES, covariate_store, fit_direction
    from brownface.dataset.layout import read_index
    from brownface.dataset.render import RenderSettings
    from brownface.dataset.stages import merge_render_shards, render_dataset
    from brownface.sampling.dispersion import VariationParams
    from brownface.sampling.langevin import IdentityParams
    from brownface.sampling.stages import merge_variations, sample_identities, sample_variations
    from brownface.store import IdentityStore, ProjectionStore, VariationStore
    from brownface.world.multipie_set import MultiPieSpec, build_multipie

    pkl = write_network_pickle(random_net(tiny_config()), tmp_path / "G.pkl")
    cfg = config.validate({"generator": {"kind": "stylegan2", "checkpoint": str(pkl)}})
    spec = generator_spec(cfg)
    fr = small_fr_file(tmp_path / "fr.pt")
    run = dict(seed=0, device="cpu")
    sample_identities(
        spec, fr, IdentityParams(algorithm="langevin", n=4, iterations=2, d0=1.0, ict=1.0),
        name="langevin", out=tmp_path / "identities.h5", stats=tmp_path / "stats.csv",
        checkpoint=tmp_path / "ck.h5", **run,
    )  # fmt: skip
    ids = IdentityStore.read(tmp_path / "identities.h5")
    assert ids.w.shape == (4, 32) and np.isfinite(ids.embedding).all()
    assert ids.provenance["generator"]["checkpoint_sha256"]
    params = VariationParams(algorithm="dispersion", variations=2, iterations=1)
    sample_variations(
        generator_spec(cfg, unused=("truncation_psi",)), fr, params, dataset="d", shard=0,
        shards=1, identities=tmp_path / "identities.h5", covariates=None,
        out=tmp_path / "shard000.h5", stats=tmp_path / "vstats.csv",
        checkpoint=tmp_path / "vck.h5", **run,
    )  # fmt: skip
    merge_variations([str(tmp_path / "shard000.h5")], str(tmp_path / "identities.h5"),
                     str(tmp_path / "variations.h5"))  # fmt: skip
    assert VariationStore.read(tmp_path / "variations.h5").w.shape == (4, 3, 32)
    render_dataset(
        spec, RenderSettings(), variations=tmp_path / "variations.h5",
        out_root=tmp_path / "shard000", image_size=16, shard=0, shards=1, device="cpu",
    )  # fmt: skip
    merge_render_shards([str(tmp_path / "shard000")], tmp_path / "rendered")
    assert len(read_index(tmp_path / "rendered")) == 12

    mp = MultiPieSpec(subjects=1, image_size=48, attendance=1.0, cameras=("13_0",), flashes=(1, 11))
    build_multipie(world.renderer, 0, tmp_path / "mp", tmp_path / "lm.csv", mp)
    rules = SubsetRules(illumination_negative=(1,), illumination_positive=(11,))
    project_multipie(
        spec, ProjectionParams(steps=2, batch_size=4, w_avg_samples=100), rules,
        root=str(tmp_path / "mp"), landmarks=str(tmp_path / "lm.csv"),
        out=str(tmp_path / "proj.h5"), shard=0, shards=1, checkpoint=str(tmp_path / "pck.h5"),
        **run,
    )  # fmt: skip
    proj = ProjectionStore.read(tmp_path / "proj.h5")
    assert proj.w.shape[1:] == (32,) and proj.provenance["generator"]["kind"] == "stylegan2"

    # Edit: directions fitted to labels drawn at random (any directions in this W will do).
    w = gen_w = load_generator(spec).mapping(torch.randn(40, 32))
    labels = np.arange(40) % 2
    fits = {n: fit_direction(gen_w.numpy(), labels, name=n) for n in COVARIATES}
    covariate_store(fits, {"test": "random"}).write(tmp_path / "covariates.h5")
    out = edit_image(load_generator(spec), tmp_path / "identities.h5", 1,
                     tmp_path / "covariates.h5", "smile", 1.0, tmp_path / "edit.png")  # fmt: skip
    assert Image.open(out).size == (32, 32) and w.shape == (40, 32)


def test_crop_settings_are_checked():
    for crop, message in [
        ({"box": [1, 2, 3]}, "generator.crop.box: expected >= 4 items"),
        ({"box": [1, 2, 3, 4], "x": 1}, "generator.crop: unknown key 'x'"),
        ([[0, 0]] * 4, "generator.crop: expected >= 5 items"),
    ]:
        with pytest.raises(UserError, match=message):
            config.validate({"generator": {"crop": crop}})
    with pytest.raises(UserError, match="expected 0 <= x0 < x1"):
        FixedBox(5, 0, 5, 10)
    spec = generator_spec(config.validate({"generator": {"crop": {"box": [1, 2, 30, 31]}}}))
    assert spec.crop == FixedBox(1, 2, 30, 31)
    assert spec.to_dict()["crop"] == {"box": [1, 2, 30, 31]}


def test_reduced_precision_is_for_cuda_only(tmp_path):
    """generator.precision bf16/fp16 runs synthesis under CUDA autocast; on a CPU the
    generator computes in float32, the reference, and gives the fp32 images."""
    fp32 = _generator(tmp_path)
    w = fp32.mapping(torch.randn(2, 32), truncation_psi=0.7)
    for precision in ("bf16", "fp16"):
        gen = _generator(tmp_path, precision=precision)
        assert gen.spec.options == {"precision": precision}
        assert torch.equal(gen.synthesis(w), fp32.synthesis(w))
    with pytest.raises(UserError, match="generator.precision"):
        config.validate({"generator": {"precision": "fp8"}})
