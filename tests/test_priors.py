"""The regularizer registry, the data priors (sphere, pca, generator), the noise index
and the independent judge, on tiny models and data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from featviz.devices import generator
from featviz.errors import SpecError
from featviz.vis import maximize, parse_regs, render
from featviz.vis.metrics import data_baseline, is_converged, noise_band, noise_index, white_noise_baseline
from featviz.vis.priors import fit_prior
from featviz.vis.render import CHECK_STEPS, CONTINUE_LR_FRACTION, check_steps, learning_rate
from featviz.vis.regularizers import PRIORS, REGULARIZERS, SPECS, RegSpec, docs_table, reg_help

DOC = Path(__file__).resolve().parents[1] / "docs" / "regularizers.md"


# ------------------------------------------------------------------ registry

def test_parse_regs_help_and_docs_come_from_the_registry():
    assert list(REGULARIZERS) == [s.name for s in SPECS] and all(isinstance(s, RegSpec) for s in SPECS)
    assert PRIORS == ("sphere", "pca", "generator")
    for spec in SPECS:  # every name parses, and the help and the docs table list it
        parse_regs(spec.name, 16)
        assert spec.name in reg_help()
        assert f"| `{spec.name}` | {spec.kind} |" in docs_table()
    assert docs_table() in DOC.read_text(encoding="utf-8"), "docs/regularizers.md is stale: paste docs_table()"
    pca = parse_regs("pca:10", 16)
    assert pca.prior == "pca" and pca.prior_amount == 10.0 and parse_regs("sphere", 16).prior_amount == 1.0
    assert parse_regs("pca+tv:0.1", 16).penalties == (("tv", 0.1),)
    for bad, msg in (("pca+fft", "own parameterization"), ("pca+sphere", "cannot be combined")):
        with pytest.raises(SpecError, match=msg):
            parse_regs(bad, 16)
    with pytest.raises(SpecError, match="own parameterization"):
        parse_regs("generator", 16, param="pixel")


def test_cli_help_lists_every_registered_name(run_cli):
    result = run_cli("maximize", "--help")
    flat = " ".join(result.out.split())
    for spec in SPECS:
        assert spec.name in flat


def test_a_new_regularizer_is_one_class_and_one_line(monkeypatch):
    from featviz.vis import regularizers as R

    class Darkness(R.Penalty):
        name = "dark"

        def penalty(self, images):
            return images.flatten(1).mean(1)

    spec = RegSpec("dark", "penalty", 2.0, "weight on the mean brightness", Darkness)
    monkeypatch.setitem(R.REGULARIZERS, "dark", spec)
    monkeypatch.setitem(R.PENALTIES, "dark", Darkness().penalty)
    recipe = parse_regs("dark", 8)
    assert recipe.penalties == (("dark", 2.0),)
    assert recipe.penalty(torch.ones(2, 1, 4, 4)).tolist() == [2.0, 2.0]


# ------------------------------------------------------------------ noise index

def test_noise_index_is_zero_for_the_data_and_one_for_white_noise():
    gen = generator(0)
    small = torch.rand(400, 1, 4, 4, generator=gen)
    data = nn.functional.interpolate(small, size=(16, 16), mode="bilinear", align_corners=False)
    base = data_baseline(data, native=small)
    assert base["white_noise"]["hf_ratio"] == pytest.approx(white_noise_baseline((1, 16, 16))["hf_ratio"])
    assert base["white_noise"]["hf_ratio"] > 0.7 and base["hf_ratio"] < 0.1
    assert base["native"]["size"] == [4, 4] and base["native"]["hf_ratio"] > base["hf_ratio"]
    assert noise_index(base["hf_ratio"], base) == pytest.approx(0.0, abs=1e-9)
    assert noise_index(base["white_noise"]["hf_ratio"], base) == pytest.approx(1.0, abs=1e-9)
    from featviz.vis import hf_ratio

    fresh = torch.rand(256, 1, 16, 16, generator=generator(7))
    assert noise_index(float(hf_ratio(fresh).median()), base) == pytest.approx(1.0, abs=0.03)
    assert noise_index(float(hf_ratio(data[:200]).median()), base) == pytest.approx(0.0, abs=0.03)
    assert noise_index(None, base) is None and noise_index(0.5, {"hf_ratio": 0.1}) is None
    assert [noise_band(v) for v in (0.05, 0.3, 0.9, None)] == ["like-data", "between", "noisy", "unknown"]


# ------------------------------------------------------------------ priors

class QuadraticUnit(nn.Module):
    """One unit computing (x − c)ᵀ A (x − c) on 6×6 images: the sphere's optimum is A's top eigenvector."""

    input_shape = (1, 6, 6)

    def __init__(self, a: torch.Tensor, center: torch.Tensor):
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("center", center)
        self.unit = nn.Identity()

    def forward(self, x):
        z = x.flatten(1) - self.center
        return self.unit(((z @ self.a) * z).sum(1, keepdim=True))


def test_sphere_render_of_a_quadratic_unit_is_its_top_eigenvector():
    gen = generator(0)
    data = (0.5 + 0.04 * torch.randn(300, 1, 6, 6, generator=gen)).clamp(0, 1)
    mean = data.flatten(1).mean(0)
    m = torch.randn(36, 36, generator=gen)
    a = m @ m.T / 36
    result = render(QuadraticUnit(a, mean), "unit:0", regs="sphere", data=data, steps=100, lr=0.05,
                    restarts=1)
    offset = result.images.flatten(1)[0] - mean
    top = torch.linalg.eigh(a).eigenvectors[:, -1]
    cosine = float((offset @ top).abs() / offset.norm())
    assert cosine >= 0.99
    radius = float((data.flatten(1) - mean).norm(dim=1).double().quantile(0.5))
    assert float(offset.norm()) == pytest.approx(radius, rel=1e-4)
    assert float(result.scores[0]) == pytest.approx(float(torch.linalg.eigvalsh(a)[-1]) * radius ** 2, rel=1e-3)



def test_every_render_decays_its_rate_and_the_check_runs_a_smaller_second_cycle():
    lr, steps, more = 0.05, 100, 60
    rates = [learning_rate(t, steps, more, lr) for t in range(steps + more)]
    assert rates[0] == lr and rates[steps - 1] < 1e-3 * lr  # cosine from lr to ~0 over the render
    assert all(a >= b for a, b in zip(rates[:steps], rates[1:steps]))
    assert max(rates[steps:]) == pytest.approx(CONTINUE_LR_FRACTION * lr) == rates[steps]  # the check's peak
    assert rates[-1] < 1e-3 * CONTINUE_LR_FRACTION * lr  # and it settles at the end too


def test_the_check_asks_every_budget_the_same_question():
    # as many steps again up to CHECK_STEPS, then a fixed length: a longer render is not
    # tested by a longer (farther-reaching) continuation
    assert CHECK_STEPS == 256
    assert [check_steps(n) for n in (0, 8, 256, 257, 1024, 2048, 100000)] == [0, 8, 256, 256, 256, 256, 256]


def test_maximize_runs_and_records_the_fixed_length_check():
    unit = QuadraticUnit(torch.eye(36), torch.full((36,), 0.5))
    short = maximize(unit, "unit:0", ["none"], steps=40, top_k=0).to_dict()["convergence"]
    long = maximize(unit, "unit:0", ["none"], steps=300, top_k=0).to_dict()["convergence"]
    assert short["extra_steps"] == 40 and long["extra_steps"] == CHECK_STEPS


def test_a_quadratic_unit_rendered_in_pixel_space_converges_under_the_schedule():
    # (x - 0.5)^T A (x - 0.5) with A positive semi-definite: the maximum over the pixel box is a
    # corner; plain ascent (sigmoid pixels, no prior) gets there and the check sees it stop.
    m = torch.randn(36, 36, generator=generator(0))
    unit = QuadraticUnit(m @ m.T / 36, torch.full((36,), 0.5))
    early = render(unit, "unit:0", steps=32, lr=0.05, continue_steps=32)
    assert not is_converged(float(early.scores[0]), float(early.continued_scores[0]))
    done = render(unit, "unit:0", steps=256, lr=0.05, continue_steps=256)
    assert is_converged(float(done.scores[0]), float(done.continued_scores[0]))
    assert float(done.scores[0]) > 5 * float(early.scores[0])
    assert float((done.images - 0.5).abs().min()) > 0.45  # every pixel at the box's edge

def _toy_data(n=200):
    gen = generator(3)
    base = torch.zeros(n, 1, 8, 8)
    rows = torch.randint(1, 7, (n,), generator=gen)
    for i, r in enumerate(rows):  # horizontal strokes at random rows, blurred a little
        base[i, 0, r, 1:7] = 1.0
    return (0.8 * base + 0.1 * torch.rand(n, 1, 8, 8, generator=gen)).clamp(0, 1)


def test_pca_prior_stays_in_its_ball_and_beats_its_starts(tiny_convnet):
    data = _toy_data()
    prior = fit_prior("pca", 6, data)
    assert prior.info["components"] == 6 and 0 < prior.info["explained_variance"] <= 1
    result = render(tiny_convnet, "block2:0-2", regs="pca:6", prior=prior, steps=40, lr=0.1, restarts=2)
    coef = (result.images.flatten(1) - prior.mean) @ prior.basis.T / prior.basis.pow(2).sum(1)
    # clamping to [0, 1] moves pixels, so the coefficients of the clamped image are near, not in, the ball
    assert (coef.norm(dim=1) <= prior.radius * 1.25).all()
    assert result.images.min() >= 0 and result.images.max() <= 1
    one = render(tiny_convnet, "block2:0-2", regs="pca:6", prior=prior, steps=40, lr=0.1, restarts=1)
    assert (result.scores >= one.scores - 1e-6).all()  # best of two restarts includes the first
    with pytest.raises(SpecError, match="needs dataset images"):
        render(tiny_convnet, "block2:0", regs="pca")


def test_generator_prior_trains_caches_and_reports_its_quality(tiny_convnet, tmp_path, monkeypatch):
    from featviz.vis import generator as G

    monkeypatch.setattr(G, "EPOCHS", 80)  # the default trains for a minute
    data = _toy_data(160)
    prior = fit_prior("generator", 4, data, cache_dir=tmp_path)
    info = prior.info
    assert not info["cached"] and info["heldout_rmse"] < info["heldout_rmse_of_mean"] and info["epochs"] == 80
    assert prior.radius == pytest.approx(G.chi2_quantile(4, 0.99) ** 0.5) and prior.radius == pytest.approx(3.64, abs=0.01)
    again = fit_prior("generator", 4, data, cache_dir=tmp_path)
    assert again.info["cached"] and all(torch.equal(a, b) for a, b in zip(prior.decoder.state_dict().values(),
                                                                          again.decoder.state_dict().values()))
    result = render(tiny_convnet, "block2:0-1", regs="generator:4", prior=prior, steps=20, lr=0.1, restarts=1)
    assert result.images.shape == (2, 1, 8, 8) and torch.isfinite(result.scores).all()
    codes = prior.encoder.encode(result.images.flatten(1))[0]
    assert codes.shape == (2, 4)


# ------------------------------------------------------------------ judge and metrics.json

def test_judge_recognizes_class_renders_of_a_tiny_model(tiny_digits, tmp_path):
    from featviz.vis.judge import load_or_train_judge

    judge = load_or_train_judge(tiny_digits.x_train, tiny_digits.y_train, tiny_digits.x_test, tiny_digits.y_test,
                                cache_dir=tmp_path, epochs=15)
    assert judge.info["test_accuracy"] > 0.8 and not judge.info["cached"]
    assert load_or_train_judge(tiny_digits.x_train, tiny_digits.y_train, cache_dir=tmp_path, epochs=15).info["cached"]
    assert judge.verdict(tiny_digits.x_test[0], int(tiny_digits.y_test[0]))["target"] == int(tiny_digits.y_test[0])
    verdicts = [judge.verdict(x, int(y)) for x, y in zip(tiny_digits.x_test[:40], tiny_digits.y_test[:40])]
    assert sum(v["predicted"] == v["target"] for v in verdicts) >= 30
    # maximize attaches a verdict to every logits:CLASS render and counts the recognized ones
    model = judge.model.eval()
    model.input_shape = (1, 8, 8)
    result = maximize(model, ["logits:0-3"], ["pca:10"], dataset=tiny_digits.x_train, steps=10, top_k=1,
                      judge=judge, check_convergence=False)
    verdicts = [img.judge for img in result.images]
    assert all(v["model"] == judge.info["name"] for v in verdicts)
    assert [v["target"] for v in verdicts] == [0, 1, 2, 3]
    summary = result.summary()["pca:10"]
    assert summary["n_judged"] == 4
    assert summary["recognized"] == sum(v["predicted"] == v["target"] for v in verdicts) / 4
    assert result.config["judge"]["test_accuracy"] == judge.info["test_accuracy"]


def test_maximize_writes_noise_index_relative_activation_and_priors(tiny_convnet, tiny_digits, tmp_path):
    from featviz.vis import save_maximization

    result = maximize(tiny_convnet, ["block2:0-1"], ["none", "pca:8"], dataset=tiny_digits.x_train, steps=12,
                      top_k=2)
    metrics = save_maximization(result, tmp_path)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["baseline"]["white_noise"]["hf_ratio"] > 0.7
    assert stored["priors"]["pca:8"]["components"] == 8 and stored["judge"] is None
    for img in metrics["images"]:
        expected = noise_index(img["hf_ratio"], stored["baseline"])
        assert img["noise_index"] == pytest.approx(expected) and img["judge"] is None
        best = next(ex["activations"][0] for ex in metrics["dataset_examples"] if ex["neuron"] == img["neuron"])
        if best > 0:
            assert img["relative_activation"] == pytest.approx(img["activation"] / best)
    assert metrics["summary"]["pca:8"]["median_noise_index"] is not None


def test_cli_maximize_with_a_prior_and_a_judge(run_cli, tmp_path, monkeypatch):
    from featviz.vis import judge as J

    monkeypatch.setattr(J, "EPOCHS", 2)  # the default trains for ten seconds
    ck = tmp_path / "ck"
    assert run_cli("train", "--dataset", "digits", "--image-size", "8", "--width", "3", "--depth", "2", "--epochs", "1",
                   "--out", ck).code == 0
    res = run_cli("maximize", ck, "--neuron", "logits:0-2", "--neuron", "block2:0", "--reg", "pca:8", "--steps", "4",
                  "--top-k", "1", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "vis")
    assert res.code == 0, res.err
    metrics = json.loads((tmp_path / "vis" / "metrics.json").read_text())
    judged = [img["judge"] for img in metrics["images"] if img["neuron"].startswith("logits")]
    assert [j["target"] for j in judged] == [0, 1, 2] and metrics["judge"]["epochs"] == 2
    assert metrics["priors"]["pca:8"]["components"] == 8 and metrics["baseline"]["native"]["size"] == [8, 8]
    assert "white noise" in res.out and "judge recognized" in res.out
    # a prior without data: one line, exit 2
    bad = run_cli("maximize", "--model", "tests.attack_models:softmax_digits", "--random-init", "--input-shape",
                  "1,8,8", "--neuron", "logits:0", "--reg", "pca", "--steps", "2", "--out", tmp_path / "bad")
    assert bad.code == 2 and "needs dataset images" in bad.err and "Traceback" not in bad.err


def test_prior_renders_names_its_own_options_before_any_work(run_cli, tmp_path):
    out = tmp_path / "o"
    for args, fragment in ((["--blocks", "nope"], "--blocks nope"), (["--units", "0-99"], "unit 99 is out of range")):
        r = run_cli("prior-renders", *args, "--out", out)
        assert r.code == 2 and fragment in r.err and "--neuron" not in r.err and "Traceback" not in r.err
        assert not out.exists()


def test_prior_renders_tradeoff_uses_the_shared_plot_with_the_results_medians(tmp_path, monkeypatch):
    import featviz.figures as figures
    from featviz.studies.prior_renders import write_tradeoff

    results = json.loads((Path(__file__).parent.parent / "studies" / "prior-renders" / "results.json").read_text())
    seen = {}
    real = figures.tradeoff_plot
    monkeypatch.setattr(figures, "tradeoff_plot", lambda series, path, **kw: seen.update(series=series, **kw) or
                        real(series, path, **kw))
    path = write_tradeoff(results, tmp_path / "tradeoff.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "tradeoff.svg").exists()
    pca = results["units"]["block3"]["pca"]
    assert seen["medians"]["pca (block3)"] == (pca["noise_index"]["value"], pca["relative_activation"]["value"])
    assert seen["log"] is True and set(seen["series"]) == {f"{reg} ({b})" for b, regs in results["units"].items()
                                                           for reg in regs}
