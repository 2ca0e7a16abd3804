"""featviz.vis: objectives, parameterizations, transforms, regularizers, render,
metrics, neuron specs, dataset examples and `featviz maximize`, on tiny models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from featviz.devices import generator, seeded
from featviz.errors import DivergenceError, SpecError
from featviz.nets import QuadraticDenseConvNet
from featviz.vis import (ActivationCapture, channel, color_decorrelation, direction, diversity, hf_ratio,
                         layer_energy, logit, maximize, neuron, objective_scores, parse_neuron_spec, parse_regs,
                         render, resolve_neurons, save_maximization, shift_stability, top_examples,
                         total_variation)
from featviz.vis import transforms as T
from featviz.vis.metrics import FLAT_FRACTION, FLAT_TV_ABSOLUTE, is_converged
from featviz.vis.param import FourierImage, PixelImage


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: a second thread only adds synchronization, which on a
    busy machine costs far more than the work (measured 30x slower). Restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rgb_convnet():
    with seeded(1):
        return QuadraticDenseConvNet(3, 5, widths=(4, 6), image_size=8).eval()


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def checkerboard(n: int = 8) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    return ((yy + xx) % 2).float()[None, None]


# ------------------------------------------------------------------ objectives

OBJECTIVES = {
    "neuron": lambda: neuron("block2", [0, 3]),
    "channel": lambda: channel("block1", [1, 2]),
    "logit": lambda: logit([4, 7]),
    "deepdream": lambda: layer_energy("block2"),
    "direction": lambda: direction("block2", torch.linspace(-1, 1, 6)),
    "diversity": lambda: channel("block2", 1) + 5.0 * diversity("block1"),
}


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_each_objective_increases_under_ascent(tiny_convnet, name):
    objective = OBJECTIVES[name]()
    before = render(tiny_convnet, objective, batch=2, steps=0, seed=3)
    after = render(tiny_convnet, objective, batch=2, steps=25, lr=0.1, seed=3)
    assert after.history[-1] > after.history[0]
    gain = after.scores - before.scores
    assert (gain > 0).all(), f"{objective}: {before.scores} -> {after.scores}"
    assert after.scores.mean() > before.scores.mean() + 1e-3


def test_objectives_compose_with_arithmetic_and_describe_themselves(tiny_convnet):
    a, b = channel("block2", 1), neuron("block1", 2)
    combined = a + 2 * b - 0.5 * layer_energy("block2")
    x = torch.rand(3, 1, 8, 8, generator=generator(0))
    with ActivationCapture(tiny_convnet.eval(), combined.modules) as cap:
        acts = cap.run(x)
    expected = a(acts) + 2 * b(acts) - 0.5 * layer_energy("block2")(acts)
    assert torch.allclose(combined(acts), expected)
    assert set(combined.modules) == {"block1", "block2"}
    assert str(combined) == "Channel [block2, 1] + 2 × Neuron [block1, 2 @ centre] + -0.5 × DeepDream [block2]"
    assert str(-a) == "-Channel [block2, 1]"
    assert torch.allclose(sum([a, b])(acts), a(acts) + b(acts))


def test_per_image_units_keep_images_independent(tiny_convnet):
    """Image 0 renders the same unit in both batches: the other images must not matter."""
    first = render(tiny_convnet, channel("block2", [0, 1, 2]), batch=3, steps=10, seed=5, regs="jitter")
    second = render(tiny_convnet, channel("block2", [0, 5, 3]), batch=3, steps=10, seed=5, regs="jitter")
    assert torch.equal(first.images[0], second.images[0])
    assert not torch.equal(first.images[1], second.images[1])


def test_render_is_deterministic_under_a_seed(tiny_convnet):
    a = render(tiny_convnet, "block2:0-2", regs="standard", steps=6, seed=11)
    b = render(tiny_convnet, "block2:0-2", regs="standard", steps=6, seed=11)
    c = render(tiny_convnet, "block2:0-2", regs="standard", steps=6, seed=12)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


# ----------------------------------------------------------------- hooks

def test_hooks_are_removed_after_render_and_after_a_failure(tiny_convnet):
    assert hook_count(tiny_convnet) == 0
    render(tiny_convnet, "block1:*", steps=2)
    assert hook_count(tiny_convnet) == 0

    def bad(acts):
        return acts["block1"].flatten(1).mean(1) * float("nan")

    from featviz.vis import Objective
    with pytest.raises(DivergenceError, match="NaN"):
        render(tiny_convnet, Objective(bad, ["block1"], "bad"), steps=3)
    assert hook_count(tiny_convnet) == 0
    tiny_convnet.train()
    render(tiny_convnet, "block1:0", steps=1)
    assert tiny_convnet.training, "render must restore the caller's train/eval mode"


def test_capture_hooks_only_the_needed_modules_and_stops_early(tiny_convnet):
    seen = []
    tiny_convnet.block2.register_forward_hook(lambda *a: seen.append("block2"))
    with ActivationCapture(tiny_convnet.eval(), ["block1"]) as cap:
        assert hook_count(tiny_convnet) == 2  # ours on block1, the test's on block2
        acts = cap.run(torch.rand(2, 1, 8, 8))
    assert set(acts) == {"block1"} and acts["block1"].shape == (2, 4, 8, 8)
    assert seen == [], "block2 ran although only block1 was needed"


# ------------------------------------------------------------------ regularizers

def test_tv_penalty_lowers_total_variation(tiny_convnet):
    plain = render(tiny_convnet, "block2:*", regs="none", steps=40, lr=0.1)
    smooth = render(tiny_convnet, "block2:*", regs="tv:20", steps=40, lr=0.1)
    assert total_variation(smooth.images).median() < 0.6 * total_variation(plain.images).median()


def test_blur_lowers_hf_ratio(tiny_convnet):
    plain = render(tiny_convnet, "block2:*", regs="none", steps=40, lr=0.1)
    blurred = render(tiny_convnet, "block2:*", regs="blur:1.0", steps=40, lr=0.1)
    assert hf_ratio(blurred.images).median() < 0.8 * hf_ratio(plain.images).median()


def test_jitter_is_random_per_image_and_seeded():
    images = torch.rand(1, 1, 8, 8, generator=generator(0)).expand(16, 1, 8, 8).contiguous()
    out = T.jitter(2)(images, generator(1))
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) >= 6, "every image must draw its own shift"
    assert torch.equal(out, T.jitter(2)(images, generator(1)))
    # Every output is an exact integer translation of the input (borders repeat the edge).
    candidates = [T.translate(images[:1], dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    for o in out:
        assert any(torch.allclose(o, c[0], atol=1e-6) for c in candidates)


def test_scale_and_rotate_draw_per_image():
    images = checkerboard(8).expand(8, 1, 8, 8).contiguous()
    for t in (T.scale(0.2), T.rotate(20)):
        out = t(images, generator(0))
        assert out.shape == images.shape
        assert len({tuple(o.flatten().tolist()) for o in out}) == 8


def test_parse_regs_presets_weights_and_errors():
    std = parse_regs("standard", 16)
    assert std.param == "fft" and std.decorrelate
    assert [name for name, _ in std.transforms] == ["pad", "jitter", "scale", "rotate", "jitter_late"]
    assert dict(std.transforms)["pad"] == 2 and dict(std.transforms)["jitter"] == 1
    assert dict(parse_regs("standard", 224).transforms)["pad"] == 21  # scaled with the image
    combo = parse_regs(["tv:0.2", "jitter:3"], 16)
    assert combo.param == "pixel" and combo.penalties == (("tv", 0.2),) and combo.transforms == (("jitter", 3.0),)
    assert combo.label == "tv:0.2+jitter:3"
    assert parse_regs("standard", 16, param="pixel").param == "pixel"
    for bad, msg in (("bogus", "unknown regularizer"), ("tv:x", "not a number"), ("none+tv", "cannot be combined"),
                     ("tv:-1", ">= 0")):
        with pytest.raises(SpecError, match=msg):
            parse_regs(bad, 16)
    with pytest.raises(SpecError, match="contradicts"):
        parse_regs("fft", 16, param="pixel")


# ----------------------------------------------------------------- parameterizations

def test_fourier_param_is_smoother_than_pixel_at_init_and_blur_is_exact():
    pix = PixelImage((1, 16, 16), 8, generator=generator(0), init_std=1.0)()
    fft = FourierImage((1, 16, 16), 8, generator=generator(0), init_std=1.0)()
    assert hf_ratio(fft).median() < 0.6 * hf_ratio(pix).median()
    assert pix.min() >= 0 and pix.max() <= 1 and fft.min() >= 0 and fft.max() <= 1
    img = FourierImage((1, 16, 16), 2, generator=generator(0), init_std=1.0)
    before = hf_ratio(img.latent().detach())
    img.blur_(1.0)
    assert (hf_ratio(img.latent().detach()) < 0.5 * before).all()


def test_color_decorrelation_reproduces_channel_covariance():
    gen = generator(0)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.5, 0.7]])
    x = torch.einsum("cd,ndhw->nchw", mix, torch.randn(64, 3, 8, 8, generator=gen))
    m = color_decorrelation(x)
    cov = torch.cov(x.transpose(0, 1).reshape(3, -1))
    # m is a scaled symmetric square root of the covariance: m m^T ∝ cov.
    ratio = (m @ m.T) / cov
    assert torch.allclose(ratio, ratio.mean().expand(3, 3), rtol=1e-3)
    assert color_decorrelation(x[:, :1]).shape == (1, 1)


@pytest.mark.parametrize("channels", [1, 3])
def test_grayscale_and_rgb_render_with_every_param(channels, tiny_convnet, rgb_convnet):
    model = tiny_convnet if channels == 1 else rgb_convnet
    for regs in ("none", "standard", "decorrelate+blur"):
        result = render(model, "block1:0-1", regs=regs, steps=8, lr=0.1,
                        decorrelation=torch.eye(channels) if channels == 3 else None)
        assert result.images.shape == (2, channels, 8, 8)
        assert torch.isfinite(result.images).all()
        assert result.images.min() >= 0 and result.images.max() <= 1
        assert result.history[-1] > result.history[0]


# --------------------------------------------------------------- metrics

def test_hf_ratio_and_tv_on_known_images():
    n = 16
    x = torch.arange(n).float()
    low = (0.5 + 0.5 * torch.cos(2 * math.pi * x / n))[None, None, None, :].expand(1, 1, n, n)
    board = checkerboard(n)
    flat = torch.full((1, 1, n, n), 0.3)
    assert hf_ratio(low).item() == pytest.approx(0.0, abs=1e-6)
    assert hf_ratio(board).item() == pytest.approx(1.0, abs=1e-6)
    assert hf_ratio(flat).item() == 0.0
    assert total_variation(board).item() == pytest.approx(2.0)
    assert total_variation(flat).item() == 0.0


def test_shift_stability_tells_a_smooth_pattern_from_pixel_noise():
    """A unit computing the square of a fixed pixel pattern (a quadratic unit) loses its
    activation when pixel noise tuned to it moves by a pixel, not for a smooth pattern."""
    gen = generator(0)
    noise = (torch.rand(1, 1, 16, 16, generator=gen) > 0.5).float()
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    smooth = (0.5 + 0.5 * torch.cos(2 * math.pi * xx / 16))[None, None]

    class Matched(nn.Module):
        def __init__(self, pattern):
            super().__init__()
            self.filter = nn.Conv2d(1, 1, 16, bias=False)
            self.filter.weight.data = pattern - pattern.mean()

        def forward(self, x):
            return self.filter(x) ** 2

    for pattern, expect_stable in ((noise, False), (smooth, True)):
        model = Matched(pattern)
        s = shift_stability(model, layer_energy("filter"), pattern).item()
        assert (s > 0.7) == expect_stable, s


# ------------------------------------------------------------------ neuron specs

def test_neuron_specs_resolve_against_a_model(tiny_convnet):
    shape = (1, 8, 8)
    ns = resolve_neurons(tiny_convnet, "block2:*", shape)
    assert ns.units == tuple(range(6)) and ns.layer_shape == (6, 4, 4)
    assert resolve_neurons(tiny_convnet, "block1:1-3", shape).units == (1, 2, 3)
    assert resolve_neurons(tiny_convnet, "block1:2@7,0", shape).position == (7, 0)
    assert resolve_neurons(tiny_convnet, "logits:9", shape).units == (9,)
    assert resolve_neurons(tiny_convnet, "block2.conv:0", shape).layer_shape == (6, 4, 4)  # any module path
    assert [n.label for n in resolve_neurons(tiny_convnet, "block1:0-1@2,3", shape).neurons] == \
        ["block1:0@2,3", "block1:1@2,3"]
    cases = [("block9:0", "unknown layer 'block9'.*valid layers: block1 \\(units 0-3\\), block2 \\(units 0-5\\), "
                          "logits \\(units 0-9\\)"),
             ("block2:6", "unit 6 is out of range for block2 \\(units 0-5\\)"),
             ("block2:0@4,0", "outside block2 \\(y 0-3"),
             ("block2:x", "cannot parse"), ("block2:3-1", "empty range"), ("logits:1@0,0", "no spatial")]
    for spec, msg in cases:
        with pytest.raises(SpecError, match=msg):
            resolve_neurons(tiny_convnet, spec, shape)


@settings(max_examples=40, deadline=None)
@given(layer=st.from_regex(r"[a-z][a-z0-9_.]{0,12}", fullmatch=True), lo=st.integers(0, 500),
       width=st.integers(0, 50), pos=st.none() | st.tuples(st.integers(0, 99), st.integers(0, 99)))
def test_neuron_spec_syntax_round_trips(layer, lo, width, pos):
    units = f"{lo}" if width == 0 else f"{lo}-{lo + width}"
    text = f"{layer}:{units}" + ("" if pos is None else f"@{pos[0]},{pos[1]}")
    if layer == "logits" and pos is not None:
        return
    parsed = parse_neuron_spec(text)
    assert (parsed.layer, parsed.units, parsed.position) == (layer, (lo, lo + width), pos)


# ------------------------------------------------------------------ dataset examples

def test_top_examples_streaming_equals_brute_force(tiny_convnet, tiny_digits):
    model = tiny_convnet.eval()
    sets = [resolve_neurons(model, "block2:*", (1, 8, 8)), resolve_neurons(model, "block1:1@3,3", (1, 8, 8))]
    found = top_examples(model, sets, tiny_digits.x_train, k=4, batch_size=37)
    for ns, per_unit in zip(sets, found):
        with torch.no_grad(), ActivationCapture(model, [ns.layer]) as cap:
            values = ns.values(cap.run(tiny_digits.x_train))
        top = torch.topk(values, 4, dim=0)
        for u, ex in enumerate(per_unit):
            assert ex.indices == top.indices[:, u].tolist()
            assert ex.activations == pytest.approx(top.values[:, u].tolist(), rel=1e-5)
            assert torch.equal(ex.images, tiny_digits.x_train[ex.indices])
    # The examples' numbers are the render objective's numbers.
    ex = found[0][2]
    score = objective_scores(model, sets[0].objective(), tiny_digits.x_train[ex.indices[:1]].expand(6, 1, 8, 8))
    assert score[2].item() == pytest.approx(ex.best, rel=1e-5)


# ------------------------------------------------------------------ maximize + files

def test_maximize_measures_and_saves_contract_fields(tiny_convnet, tiny_digits, tmp_path):
    result = maximize(tiny_convnet, ["block2:0-2", "logits:1"], ["none", "standard"], steps=10, lr=0.1,
                      dataset=tiny_digits.x_train, top_k=3)
    metrics = save_maximization(result, tmp_path, upscale=4)
    assert len(metrics["images"]) == 2 * 4 and len(metrics["dataset_examples"]) == 4
    for img in metrics["images"]:
        assert {"neuron", "reg", "file", "activation", "hf_ratio", "tv", "shift_stability", "steps"} <= set(img)
        assert img["steps"] == 10 and math.isfinite(img["activation"])
        assert (tmp_path / img["file"]).is_file()
    ex = metrics["dataset_examples"][0]
    assert ex["neuron"] == "block2:0" and len(ex["files"]) == 3 and ex["activations"] == sorted(ex["activations"])[::-1]
    best = {e["neuron"]: e["activations"][0] for e in metrics["dataset_examples"]}
    for img in metrics["images"]:  # relative to the best example; undefined when that is not positive
        ref = best[img["neuron"]]
        expected = img["activation"] / ref if ref > 0 else None
        assert img["relative_activation"] == (pytest.approx(expected) if expected is not None else None)
    assert any(img["relative_activation"] is not None for img in metrics["images"])
    first = metrics["images"][0]
    from PIL import Image
    assert Image.open(tmp_path / first["file"]).size == (32, 32)
    assert (tmp_path / "grid.png").is_file()
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["summary"]["standard"]["n"] == 4
    assert on_disk["summary"]["none"]["activation_vs_none"] == pytest.approx(1.0)


# ------------------------------------------------------------------ CLI

@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_convnet):
    from featviz.checkpoint import make_card, save_checkpoint

    card = make_card(tiny_convnet, dataset={"name": "digits", "image_size": 8},
                     training={"mode": "joint", "adv": None, "epochs": 0, "seed": 0}, metrics={})
    return save_checkpoint(tmp_path / "ckpt", tiny_convnet, card)


def test_cli_maximize_compare_regs_writes_metrics(run_cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "vis"
    res = run_cli("maximize", tiny_checkpoint, "--neuron", "block2:*", "--compare-regs", "--reg", "none",
                  "--reg", "tv:0.1+jitter", "--steps", "5", "--top-k", "2", "--json", "--out", out)
    assert res.code == 0, res.err
    printed = json.loads(res.out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert printed["images"] == metrics["images"]
    assert [s["reg"] for s in metrics["settings"]] == ["none", "tv:0.1+jitter"]
    assert len(metrics["images"]) == 12 and len(metrics["dataset_examples"]) == 6
    assert all((out / f).is_file() for ex in metrics["dataset_examples"] for f in ex["files"])
    again = run_cli("maximize", tiny_checkpoint, "--neuron", "block2:0", "--out", out)
    assert again.code == 2 and "not empty" in again.err


@pytest.mark.parametrize("spec, message", [
    ("block7:0", "unknown layer 'block7'; valid layers: block1 (units 0-3), block2 (units 0-5), logits (units 0-9)"),
    ("block1:4", "unit 4 is out of range for block1 (units 0-3)"),
    ("block1:two", "cannot parse neuron spec"),
])
def test_cli_bad_neuron_specs_exit_2_with_one_line(run_cli, tiny_checkpoint, tmp_path, spec, message):
    res = run_cli("maximize", tiny_checkpoint, "--neuron", spec, "--steps", "1", "--out", tmp_path / "o")
    assert res.code == 2
    lines = [l for l in res.err.splitlines() if l.strip()]
    assert len(lines) == 1 and message in lines[0], res.err
    assert "Traceback" not in res.err
    assert not (tmp_path / "o").exists()


def test_cli_any_model_from_a_factory_with_weights_and_normalization(run_cli, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    (tmp_path / "my_nets.py").write_text(
        "import torch\nfrom torch import nn\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),"
        " nn.Linear(5, 4))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_nets  # noqa: F401  (the factory must import)
    weights = {k: torch.full_like(v, 0.1) for k, v in my_nets.make().state_dict().items()}
    save_file(weights, str(tmp_path / "w.safetensors"))
    out = tmp_path / "any"
    res = run_cli("maximize", "--model", "my_nets:make", "--weights", tmp_path / "w.safetensors", "--input-shape",
                  "3,8,8", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--neuron", "0:*",
                  "--neuron", "logits:2", "--reg", "standard", "--steps", "4", "--json", "--out", out)
    assert res.code == 0, res.err
    metrics = json.loads(res.out)
    assert [i["neuron"] for i in metrics["images"]] == [f"0:{u}" for u in range(5)] + ["logits:2"]
    assert metrics["dataset_examples"] == []
    res = run_cli("maximize", "--model", "my_nets:make", "--random-init", "--neuron", "9:0", "--out", tmp_path / "x")
    assert res.code == 2 and "--input-shape" in res.err
    res = run_cli("maximize", "--model", "my_nets:make", "--random-init", "--input-shape", "3,8,8", "--neuron", "9:0",
                  "--out", tmp_path / "x")
    assert res.code == 2 and "unknown layer '9'" in res.err and "0 (units 0-4)" in res.err


def test_divergence_is_reported_and_nothing_written(run_cli, tmp_path, monkeypatch):
    (tmp_path / "nan_net.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class Bad(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.conv = nn.Conv2d(1, 2, 3)\n"
        "    def forward(self, x):\n"
        "        return self.conv(x) / (x.sum() * 0)\n"
        "def make():\n    return Bad()\n")
    monkeypatch.chdir(tmp_path)
    res = run_cli("maximize", "--model", "nan_net:make", "--random-init", "--input-shape", "1,6,6", "--neuron", "logits:0",
                  "--steps", "3", "--out", tmp_path / "o")
    assert res.code == 2 and "diverged" in res.err and "--lr" in res.err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ honest metrics: baseline, flat, converged

def _np_hf_ratio(image: np.ndarray, cutoff: float = 0.25) -> float:
    """Full 2-D FFT of one (H, W) image, mean removed: energy at radial frequency > cutoff / total."""
    x = image - image.mean()
    power = np.abs(np.fft.fft2(x)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(x.shape[0]), np.fft.fftfreq(x.shape[1]), indexing="ij")
    return float(power[np.hypot(fy, fx) > cutoff].sum() / power.sum()) if power.sum() > 0 else 0.0


def test_metrics_carry_the_data_baseline_computed_independently(tiny_convnet, tiny_digits):
    data = tiny_digits.x_train[:8]  # an even count: the median is the mean of the two middle values
    result = maximize(tiny_convnet, "block2:0", ["none"], steps=30, lr=0.5, dataset=data, top_k=1,
                      check_convergence=False)
    base = result.to_dict()["baseline"]
    arrays = data[:, 0].double().numpy()
    tvs = [np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean() for a in arrays]
    assert base["n"] == 8
    assert base["hf_ratio"] == pytest.approx(float(np.median([_np_hf_ratio(a) for a in arrays])), abs=1e-5)
    assert base["tv"] == pytest.approx(float(np.median(tvs)), abs=1e-5)
    summary = result.summary()["none"]
    assert summary["hf_over_data"] == pytest.approx(summary["median_hf_ratio"] / base["hf_ratio"])
    # No data: nulls and a reason, and flatness falls back to the absolute threshold.
    bare = maximize(tiny_convnet, "block1:0", ["none"], steps=3, check_convergence=False).to_dict()
    assert bare["baseline"]["hf_ratio"] is None and bare["baseline"]["tv"] is None and bare["baseline"]["reason"]
    assert bare["flat_tv_threshold"] == FLAT_TV_ABSOLUTE and bare["summary"]["none"]["hf_over_data"] is None


def test_flat_image_is_flagged_and_not_scored(tiny_convnet, tiny_digits):
    # Zero steps leave the initial image: mid-grey with 1 % noise, far flatter than any digit.
    result = maximize(tiny_convnet, "block1:0-1", ["none"], steps=0, dataset=tiny_digits.x_train, top_k=0,
                      check_convergence=False)
    metrics = result.to_dict()
    assert metrics["flat_tv_threshold"] == pytest.approx(FLAT_FRACTION * metrics["baseline"]["tv"])
    for img in metrics["images"]:
        assert img["flat"] is True and img["hf_ratio"] is None and img["tv"] < metrics["flat_tv_threshold"]
    assert metrics["summary"]["none"]["n_flat"] == 2 and metrics["summary"]["none"]["median_hf_ratio"] is None
    # A render that moved is not flat and is scored.
    moved = maximize(tiny_convnet, "block2:0-1", ["none"], steps=60, lr=0.5, dataset=tiny_digits.x_train, top_k=0,
                     check_convergence=False).to_dict()
    assert all(not img["flat"] and 0 <= img["hf_ratio"] <= 1 for img in moved["images"])


def test_convergence_flag_early_stop_vs_converged(tiny_convnet):
    # Stopped while still climbing: the check's smaller second cycle still finds > 1 % more.
    early = maximize(tiny_convnet, "block2:4-5", ["none"], steps=32, lr=0.05).images
    assert all(img.converged is False for img in early)
    assert all(img.activation_doubled - img.activation > 0.01 * abs(img.activation) for img in early)
    # Pixels saturate under a large step: going on changes nothing any more.
    done = maximize(tiny_convnet, "block1:0-3", ["none"], steps=400, lr=1.0).images
    assert all(img.converged is True for img in done)
    # The reported image is the one at `steps`, not the continued one.
    plain = render(tiny_convnet, "block1:0-3", steps=400, lr=1.0)
    assert torch.equal(torch.stack([img.image for img in done]), plain.images)
    assert not is_converged(1.0, 1.02) and is_converged(1.0, 0.995) and not is_converged(1.0, float("nan"))


def test_gallery_table_shows_the_data_baseline(tiny_convnet, tiny_digits, tmp_path):
    from featviz.report import layer_summary
    from featviz.report.results import read_visuals

    result = maximize(tiny_convnet, "block2:0-1", ["none"], steps=3, dataset=tiny_digits.x_train, top_k=1,
                      check_convergence=False)
    metrics = save_maximization(result, tmp_path, upscale=1, grid=False)
    rows = layer_summary(read_visuals([tmp_path]), "block2")
    assert [r["reg"] for r in rows] == ["none", "data (real images)"]
    assert rows[1]["hf_ratio"] == metrics["baseline"]["hf_ratio"] and rows[1]["tv"] == metrics["baseline"]["tv"]


def test_render_takes_a_user_transform(tiny_convnet):
    """A transform function joins the named ones: here it blanks the left half of what the
    model sees, so no gradient reaches those pixels and they keep their initial values."""
    calls = []

    def blank_left(images, gen):
        assert isinstance(gen, torch.Generator) and images.dim() == 4
        calls.append(images.shape[0])
        out = images.clone()
        out[..., : images.shape[-1] // 2] = 0.5
        return out

    start = render(tiny_convnet, "block2:0-1", steps=0, seed=4)
    after = render(tiny_convnet, "block2:0-1", steps=8, lr=0.1, seed=4, transforms=[blank_left])
    plain = render(tiny_convnet, "block2:0-1", steps=8, lr=0.1, seed=4)
    assert calls == [2] * 8
    assert torch.equal(after.images[..., :4], start.images[..., :4])
    assert not torch.equal(after.images[..., 4:], start.images[..., 4:])
    assert not torch.equal(plain.images[..., :4], start.images[..., :4])
    assert after.recipe.label == "blank_left"
    assert after.recipe.to_dict()["transforms"] == [["blank_left", None]]
    with_names = render(tiny_convnet, "block2:0-1", steps=2, seed=4, transforms=["jitter:1", blank_left])
    assert with_names.recipe.transforms == (("jitter", 1.0),) and with_names.recipe.label == "jitter:1+blank_left"


def test_render_takes_a_user_regularizer(tiny_convnet):
    """A Penalty subclass behaves exactly like the built-in penalty it reimplements, and
    its weight works the same way."""
    from featviz.vis import Penalty
    from featviz.vis.regularizers import penalty_l2

    class MyL2(Penalty):
        def penalty(self, images):
            return penalty_l2(images)

    named = render(tiny_convnet, "block2:0-2", regs="l2:3", steps=6, lr=0.1, seed=2)
    mine = render(tiny_convnet, "block2:0-2", steps=6, lr=0.1, seed=2, regularizers=[MyL2(3)])
    weak = render(tiny_convnet, "block2:0-2", steps=6, lr=0.1, seed=2, regularizers=[MyL2(0)])
    plain = render(tiny_convnet, "block2:0-2", steps=6, lr=0.1, seed=2)
    assert torch.equal(mine.images, named.images)
    assert torch.equal(weak.images, plain.images) and not torch.equal(mine.images, plain.images)
    assert mine.recipe.label == "myl2:3" and mine.recipe.to_dict()["penalties"] == {"myl2:3": 3.0}
    # names and functions mix; a function returns one value per image
    both = render(tiny_convnet, "block2:0-2", steps=2, seed=2, regularizers=["tv:0.5", lambda im: im.mean((1, 2, 3))])
    assert both.recipe.penalties == (("tv", 0.5),) and both.recipe.label == "tv:0.5+<lambda>"
    with pytest.raises(SpecError, match="one value per image"):
        render(tiny_convnet, "block2:0-2", steps=1, regularizers=[lambda im: im.mean()])
    with pytest.raises(SpecError, match="not a transform"):
        render(tiny_convnet, "block2:0-2", steps=1, transforms=["tv"])
    with pytest.raises(SpecError):
        MyL2(-1.0)
