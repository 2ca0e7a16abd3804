"""The hierarchy study: alignment metrics, targets, learners, the driver and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from featviz.cli import cli, main
from featviz.devices import generator
from featviz.errors import FeatvizError
from featviz.hierarchy import (LEARNERS, FeatureProbe, ToyTarget, deep_learner, feature_r2, fit_exact_kernel,
                               fit_kernel, linear_cka, make_dataset, make_target, mean_cca, preset, shallow_learner,
                               shallow_width, stage_epochs, train_neural)
from featviz.hierarchy.learners import monomial_features, parameter_count
from featviz.stats import bootstrap, holm, loglog_slope, slope_of_mean, threshold
from featviz.studies.hierarchy import lr_edge_warnings, run_study


# --- metrics -------------------------------------------------------------------------------------


def test_feature_r2_is_one_for_an_affine_map_and_near_zero_for_independent_features():
    gen = generator(0)
    teacher = torch.randn(800, 3, generator=gen)
    mix = torch.randn(3, 6, generator=gen)
    learned = teacher @ mix + 5.0  # an affine image of the teacher, with 3 extra redundant dims
    assert feature_r2(learned[:400], teacher[:400], learned[400:], teacher[400:]) == pytest.approx(1.0, abs=1e-6)
    noise = torch.randn(800, 6, generator=gen)
    held_out = feature_r2(noise[:400], teacher[:400], noise[400:], teacher[400:])
    assert -0.1 < held_out < 0.05  # held out: no credit for fitting noise
    assert feature_r2(noise, teacher) > held_out  # in-sample R² is inflated by the fit


def test_feature_r2_measures_the_explained_share_of_variance():
    gen = generator(1)
    signal = torch.randn(20000, 1, generator=gen)
    learned = signal + 0.5 * torch.randn(20000, 1, generator=gen)  # R² = 1 / (1 + 0.25) = 0.8
    assert feature_r2(learned[:10000], signal[:10000], learned[10000:], signal[10000:]) == pytest.approx(0.8, abs=0.01)


def test_mean_cca_is_one_for_a_rotation_and_small_for_independent_features():
    gen = generator(2)
    teacher = torch.randn(2000, 4, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen))
    assert mean_cca(teacher @ q, teacher) == pytest.approx(1.0, abs=1e-5)
    assert mean_cca(torch.randn(2000, 4, generator=gen), teacher) < 0.1


def test_linear_cka_is_one_for_a_rotation_and_scale_and_small_for_independent_features():
    gen = generator(4)
    a = torch.randn(5000, 4, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen))
    assert linear_cka(3.0 * a @ q + 1.0, a) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(torch.randn(5000, 6, generator=gen), a) < 0.01


class _Fixed(torch.nn.Module):
    """A "learner" whose layers are given functions of x (to construct alignment cases)."""

    def __init__(self, layers):
        super().__init__()
        self.layers, self.dummy = layers, torch.nn.Parameter(torch.zeros(1))

    def features(self, x):
        return [f(x) for f in self.layers]


def test_alignment_both_ways_on_constructed_learners():
    config = preset("quick", d=8, k=2, depth=2)
    teacher = make_target(config, seed=0)
    probe = FeatureProbe.from_target(teacher, torch.randn(8000, 8, generator=generator(5)))
    same = _Fixed([lambda x: teacher.features(x)[0], lambda x: teacher.features(x)[1]])
    exact = probe.alignment(same)
    for key in ("r2_to_teacher", "r2_from_teacher", "cka"):
        assert exact[key] == pytest.approx([1.0, 1.0], abs=1e-6), key
    # layer 1 also carries the teacher's layer 2: still recoverable (R² to teacher ≈ 1), but
    # the teacher's layer 1 no longer explains it, and its layer 2 does explain part of it
    leaky = _Fixed([lambda x: torch.cat(teacher.features(x), 1), lambda x: teacher.features(x)[1]])
    leak = probe.alignment(leaky)
    assert leak["r2_to_teacher"][0] == pytest.approx(1.0, abs=1e-6)
    assert leak["r2_from_teacher"][0] < exact["r2_from_teacher"][0] - 0.2
    assert leak["cka"][0] < exact["cka"][0] - 0.05
    matrix, clean = probe.from_teacher_matrix(leaky), probe.from_teacher_matrix(same)
    assert matrix[0][1] > clean[0][1] + 0.2  # layer-2 signal found in layer 1 (the layers correlate: clean > 0)


# --- statistics ----------------------------------------------------------------------------------


def test_slope_fit_and_bootstrap_recover_a_known_exponent():
    x = [0.025, 0.05, 0.1, 0.2]
    assert loglog_slope(x, [3.0 * v ** 1.7 for v in x]) == pytest.approx(1.7, abs=1e-9)
    rng = torch.Generator().manual_seed(0)
    noise = torch.exp(0.05 * torch.randn(6, 4, generator=rng, dtype=torch.float64)).numpy()
    seeds = noise * [[2.0 * v ** 2 for v in x]]
    out = bootstrap(seeds, slope_of_mean(x), draws=500)
    assert out["low"] <= 2.0 <= out["high"] and abs(out["value"] - 2.0) < 0.1 and out["high"] - out["low"] < 0.3
    one = bootstrap(seeds[:1], slope_of_mean(x))
    assert one["low"] == one["value"] == one["high"]  # one seed: no interval is invented
    # n* where a curve 1/n falls to 0.01: between 64 and 128, log-log interpolated (exactly 100)
    n_star = threshold([16, 64, 128, 512], [1 / 16, 1 / 64, 1 / 128, 1 / 512], 0.01)
    assert n_star["value"] == pytest.approx(100, rel=1e-9) and (n_star["low"], n_star["high"]) == (64, 128)
    assert threshold([16, 64], [0.5, 0.4], 0.01)["censored"] == "right"  # never reached: a bound, not a number


def test_lr_edge_warnings_fire_on_edges_only():
    grid = (0.01, 0.02, 0.04, 0.08)
    lines = lr_edge_warnings(grid, {"joint": {0: 0.01, 1: 0.02, 2: 0.08}, "shallow": {0: 0.04}})
    assert len(lines) == 2
    assert "joint seed 0" in lines[0] and "lowest" in lines[0]
    assert "joint seed 2" in lines[1] and "highest" in lines[1]
    assert lr_edge_warnings((0.03,), {"joint": {0: 0.03}}) == [
        "joint: the learning-rate grid has one value (0.03); nothing was tuned"]


# --- targets -------------------------------------------------------------------------------------


def test_toy_targets_are_the_talks_formulas():
    x = torch.tensor([[1.0, 2.0, 3.0, -1.0, 0.5]])
    step1, step2 = ToyTarget("step1", d=5, alpha=0.1), ToyTarget("step2", d=5, alpha=0.1)
    raw1 = 1 + 4 + 0.1 * (1 + 16)
    raw2 = 1 + 4 + 0.1 * ((1 + 3) ** 2 + (4 - 1) ** 2)
    assert float(step1(x) * step1.normalizer) == pytest.approx(raw1, rel=1e-6)
    assert float(step2(x) * step2.normalizer) == pytest.approx(raw2, rel=1e-6)
    assert torch.equal(step2.features(x)[1], torch.tensor([[16.0, 9.0]]))
    y = step2(torch.randn(50000, 5, generator=generator(3)))
    assert float(y.var()) == pytest.approx(1.0, abs=0.05)  # normalized like the teacher


def test_presets_validate_and_reject_bad_values():
    assert preset("default").alpha == 0.3 and preset("default").seeds == 3
    assert preset("quick", width=8).width == 8
    with pytest.raises(FeatvizError, match="alpha"):
        preset("quick", alpha=1.5)
    with pytest.raises(FeatvizError, match="preset"):
        preset("nope")
    with pytest.raises(FeatvizError, match="depth"):
        preset("step1", depth=3)


def test_n_sweep_data_share_validation_and_test_sets():
    config = preset("quick")
    small = make_dataset(config, seed=0, n_train=100)
    full = make_dataset(config, seed=0)
    assert torch.equal(small.x_train, full.x_train[:100])
    assert torch.equal(small.x_test, full.x_test) and torch.equal(small.y_val, full.y_val)


# --- learners ------------------------------------------------------------------------------------


def test_shallow_learner_matches_the_deep_parameter_count():
    for connect in ("dense", "skip2"):
        deep = parameter_count(deep_learner(20, 48, 3, seed=0, connect=connect))
        width = shallow_width(20, 48, 3, connect)
        assert abs(parameter_count(shallow_learner(20, width, seed=0)) - deep) / deep < 0.01
    assert shallow_width(20, 48, 3, "skip2") == 415  # round((9123 - 1) / 22)
    assert deep_learner(20, 48, 3, 0).sources == [[0], [1, 0], [2, 1, 0]]  # dense by default


def test_total_budget_gives_every_learner_the_same_epochs():
    for epochs in (48, 20, 7):
        totals = {mode: sum(stage_epochs(mode, 3, epochs)) for mode in ("joint", "layerwise", "layerwise+joint")}
        assert set(totals.values()) == {epochs}, totals
    assert stage_epochs("layerwise+joint", 3, 20) == (5, 5, 5, 5)
    assert stage_epochs("layerwise", 3, 20) == (6, 7, 7)
    assert stage_epochs("layerwise+joint", 2, 10, "per-stage") == (10, 10, 10)
    with pytest.raises(FeatvizError, match="at least 4"):  # never a stage of zero epochs, never over the total
        stage_epochs("layerwise+joint", 3, 2)


def test_joint_stage_after_layerwise_warms_up_at_a_lower_rate():
    from featviz.train import TrainConfig, _make_optimizer

    params = [torch.nn.Parameter(torch.zeros(2))]
    opt, sched = _make_optimizer(params, TrainConfig(lr=0.04), 100, lr=0.01, warmup=0.1)
    rates = []
    for _ in range(100):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(0.001) and rates[9] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 0.09)))
    assert max(rates) <= 0.01 and rates[-1] < 1e-4  # ramps to the lowered rate, then the cosine decay


@pytest.fixture(scope="module")
def tiny():
    config = preset("quick", d=8, k=2, depth=2, width=8, n_train=600, epochs=4)
    data = make_dataset(config, seed=0)
    return config, data, FeatureProbe.from_target(data.teacher, data.x_test[:400])


def test_layerwise_training_keeps_frozen_layers_fixed(tiny):
    config, data, probe = tiny
    model = deep_learner(config.d, 8, config.depth, 0)
    untrained = probe.r2(model)[0]
    fit = train_neural(model, data, probe, "layerwise", epochs=(3, 3), lr=3e-2, batch_size=128, seed=0,
                       tracker=probe)
    assert fit.curve.stage == ["block1"] * 3 + ["block2"] * 3
    layer1 = [epoch[0] for epoch in fit.curve.feature_r2]
    # After stage 1, block 1 is frozen (weights and BatchNorm statistics): its R² cannot move.
    assert layer1[3:] == [layer1[2]] * 3
    assert layer1[2] > untrained + 0.1  # and stage 1 did learn the teacher's first layer
    assert fit.stage_alignment["layer1"]["r2_to_teacher"][0] == fit.stage_alignment["layer2"]["r2_to_teacher"][0]
    assert fit.total_steps == 6 * math.ceil(600 / 128)


def test_neural_training_is_deterministic_and_finite(tiny):
    config, data, probe = tiny
    fits = [train_neural(deep_learner(config.d, 8, config.depth, 5), data, probe, "joint", epochs=(2,), lr=1e-2,
                         batch_size=128, seed=5) for _ in range(2)]
    assert fits[0].curve.test_rel_mse == fits[1].curve.test_rel_mse
    assert fits[0].feature_r2 == fits[1].feature_r2
    assert all(math.isfinite(v) for v in fits[0].curve.test_rel_mse)
    assert len(fits[0].cca) == config.depth and all(0 <= c <= 1 for c in fits[0].cca)


def test_kernel_fits_a_quadratic_target_and_chooses_on_validation():
    config = preset("quick", target="step1", depth=2, n_train=1500)
    data = make_dataset(config, seed=0)
    data.y_train = (data.x_train[:, :2] ** 2).sum(1)  # a pure degree-2 target
    data.y_val, data.y_test = (data.x_val[:, :2] ** 2).sum(1), (data.x_test[:, :2] ** 2).sum(1)
    fit = fit_kernel(data, degrees=(1, 2), ridges=(1e-6, 1.0), landmarks=400, seed=0)
    assert fit.info["degree"] == 2 and fit.rel_test_mse < 0.02  # degree 1 cannot fit x1² + x2²
    assert fit.feature_r2 == [] and fit.curve.test_rel_mse == []


def test_exact_kernel_is_the_polynomial_kernel_and_fits_its_degree():
    x = torch.randn(5, 3, generator=generator(6), dtype=torch.float64).numpy()
    phi = monomial_features(x, 4)
    assert phi.shape == (5, 35)  # C(3 + 4, 4) monomials
    assert phi @ phi.T == pytest.approx((x @ x.T / 3 + 1) ** 4, rel=1e-10)
    config = preset("quick", d=4, k=2, depth=2, n_train=600, n_val=200, n_test=400)
    data = make_dataset(config, seed=0)  # a 2-layer quadratic teacher: a degree-4 polynomial
    fit = fit_exact_kernel(data, degree=4, ridges=(1e-8, 1e-2))
    assert fit.rel_test_mse < 1e-6 and fit.info == {"degree": 4, "ridge": 1e-8, "features": 70}


def test_exact_kernel_below_its_feature_count_solves_the_same_ridge_in_the_dual():
    # n = 50 < 70 features: the n × n solve must give the primal (F × F) ridge solution
    config = preset("quick", d=4, k=2, depth=2, n_train=50, n_val=100, n_test=200)
    data = make_dataset(config, seed=1)
    fit = fit_exact_kernel(data, degree=4, ridges=(1e-2,))
    phi = [monomial_features(x.double().numpy(), 4) for x in (data.x_train, data.x_test)]
    y_tr, y_te = data.y_train.double().numpy(), data.y_test.double().numpy()
    mean = phi[0].mean(0)
    a, b = phi[0] - mean, phi[1] - mean
    cov = a.T @ a / len(a)
    w = np.linalg.solve(cov + 1e-2 * np.trace(cov) / len(cov) * np.eye(len(cov)), a.T @ (y_tr - y_tr.mean()) / len(a))
    primal = np.mean((b @ w + y_tr.mean() - y_te) ** 2) / y_te.var(ddof=1)
    assert fit.rel_test_mse == pytest.approx(primal, rel=1e-8) and 0.01 < primal < 1  # underdetermined: a real error


# --- the study and the command -------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hier") / "run"
    result = CliRunner().invoke(cli, ["hierarchy", "run", "--preset", "quick", "--seed", "0", "--device", "cpu",
                                      "--json", "--out", str(out)])
    return out, result


def test_cli_writes_the_contract_fields(quick_run):
    out, result = quick_run
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    results = json.loads((out / "results.json").read_text())
    assert printed["summary"] == results["summary"]
    config = preset("quick")
    steps = config.epochs * math.ceil(config.n_train / config.batch_size)
    for name in LEARNERS:
        row = results["summary"][name]
        assert row["rel_test_mse"] > 0 and math.isfinite(row["rel_test_mse"])
        assert row["epochs"] == (0 if name == "kernel" else config.epochs)
        assert row["total_steps"] == (0 if name == "kernel" else steps)  # matched budgets
        layers = {"kernel": 0, "shallow": 1}.get(name, config.depth)
        assert len(row["feature_r2"]) == layers
        exact = set() if name == "kernel" else {"span_error", "subspace_error", "readout_error"}
        assert set(row["alignment"]) == {"r2_to_teacher", "r2_from_teacher", "cka"} | exact
        assert all(len(v) == (1 if k in exact else layers) for k, v in row["alignment"].items())
        assert all(0 <= row["alignment"][k][0] <= 1 for k in exact - {"readout_error"})
    p = results["primary"]
    assert p["low"] <= p["value"] <= p["high"] and p["level"] == 0.95
    assert p["value"] == pytest.approx(results["ratios"]["layerwise/joint"])
    control = results["frozen_control"]
    assert len(control["rel_test_mse_frozen_seeds"]) == 1
    assert control["rel_test_mse_unfrozen"] == pytest.approx(results["summary"]["layerwise+joint"]["rel_test_mse"])
    comps = results["comparisons"]
    # the primary endpoint stands outside the Holm family; the secondaries are adjusted among themselves
    assert comps["layerwise/joint"]["role"] == "primary" and comps["layerwise/joint"]["p_holm"] is None
    secondary = {k: v for k, v in comps.items() if k != "layerwise/joint"}
    assert secondary and all(v["role"] == "secondary" for v in secondary.values())
    assert [v["p_holm"] for v in secondary.values()] == list(
        holm({k: v["tests"]["p_permutation"] for k, v in secondary.items()}).values())
    for name in ("joint", "layerwise", "layerwise+joint", "shallow"):
        (run,) = results["curves"][name]
        assert len(run["test_rel_mse"]) == len(run["feature_r2"]) == len(run["r2_from_teacher"]) == config.epochs
    assert results["curves"]["layerwise+joint"][0]["stage"] == ["block1"] * 5 + ["block2"] * 5 + ["block3"] * 5 + [
        "joint"] * 5
    assert results["lr_edge_warnings"] == printed["lr_edge_warnings"] and len(results["lr_edge_warnings"]) == 4
    gain = results["correction"]["layer1_gain"]
    before, after = results["correction"]["alignment_before_joint"], results["correction"]["alignment_after_joint"]
    assert gain["cka"] == pytest.approx(after["cka"][0] - before["cka"][0])
    assert results["config"]["alpha"] == config.alpha and results["seconds"] > 0
    assert results["config"]["connect"] == "dense" and results["config"]["budget"] == "total"
    assert len(results["width_sweep"]["width"]) == 2
    for stem in ("training_error", "feature_r2", "error_vs_width"):
        for ext in ("png", "svg"):
            assert (out / f"{stem}.{ext}").stat().st_size > 1000


def test_quick_preset_shows_joint_beating_layerwise(quick_run):
    out, _ = quick_run
    summary = json.loads((out / "results.json").read_text())["summary"]
    assert summary["joint"]["rel_test_mse"] < summary["layerwise"]["rel_test_mse"]
    assert summary["joint"]["feature_r2"][0] > summary["layerwise"]["feature_r2"][0]


def _main_exit(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


def test_cli_rejects_bad_input_in_one_line(tmp_path, capsys):
    code, err = _main_exit(["hierarchy", "run", "--preset", "quick", "--alpha", "2", "--out", str(tmp_path / "x")],
                           capsys)
    assert code == 2 and "alpha" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    code, err = _main_exit(["hierarchy", "run", "--preset", "quick", "--out", str(busy)], capsys)
    assert code == 2 and "not empty" in err
    assert not (tmp_path / "x").exists()


def test_run_study_chooses_each_seeds_rate_on_validation_and_per_stage_budget():
    config = preset("quick", d=8, k=2, depth=2, width=8, n_train=400, epochs=2, seeds=2, width_sweep=(),
                    lr_grid=(1e-2, 3e-2, 1e-1), budget="per-stage", n_sweep=(200,))
    results = run_study(config, progress=False)
    for seed, lr in zip(config.seed_list, results["summary"]["joint"]["lr"]):
        table = results["lr_search"]["joint"][str(seed)]
        assert set(table) == {"0.01", "0.03", "0.1"}
        assert table[f"{lr:g}"] == min(v for v in table.values() if v is not None)  # chosen on validation
    steps = {name: results["summary"][name]["total_steps"] for name in ("joint", "layerwise", "layerwise+joint")}
    assert steps["layerwise"] == 2 * steps["joint"] and steps["layerwise+joint"] == 3 * steps["joint"]
    assert results["n_sweep"]["n"] == [200, 400] and results["width_sweep"] == {}
    edges = [w for w in results["lr_edge_warnings"] if "0.1 " in w or "0.01 " in w]
    assert edges == results["lr_edge_warnings"]  # only edge choices are reported


def test_worker_processes_give_the_same_fits_as_one_process():
    from featviz.studies.hierarchy import Task, run_tasks

    config = preset("quick", d=8, k=2, depth=2, width=8, n_train=400, epochs=3, align_samples=500)
    tasks = [Task("joint", 0, 1e-2), Task("layerwise+joint", 1, 1e-2), Task("shallow", 0, 1e-2, n=200)]
    here = run_tasks(config, tasks, workers=1)
    there = run_tasks(config, tasks, workers=2)
    for task in tasks:
        assert here[task].curve.to_dict() == there[task].curve.to_dict()
        assert here[task].rel_test_mse == there[task].rel_test_mse
        assert here[task].alignment == there[task].alignment


# --- the α sweep and scaling ---------------------------------------------------------------------


def test_alpha_sweep_writes_slopes_with_intervals(tmp_path, capsys):
    out = tmp_path / "alpha"
    result = CliRunner().invoke(cli, ["hierarchy", "alpha-sweep", "--alphas", "0.05,0.2", "--seeds", "2",
                                      "--epochs", "3", "--n-train", "300", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["alphas"] == [0.05, 0.2]
    for moment in ("stage1", "joint"):
        s = results["slopes"][moment]
        assert s["low"] <= s["value"] <= s["high"] and all(math.isfinite(s[k]) for k in ("value", "low", "high"))
        assert len(results["errors"]["r2_to_teacher"][moment]["e1_seeds"]) == 2
    assert (out / "alpha_errors.png").stat().st_size > 1000
    code, err = _main_exit(["hierarchy", "alpha-sweep", "--alphas", "0.1", "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "two values" in err and not (tmp_path / "b").exists()
    code, err = _main_exit(["hierarchy", "scaling", "--d", "4,x", "--out", str(tmp_path / "c")], capsys)
    assert code == 2 and "--d" in err and len(err.strip().splitlines()) == 1


def test_scaling_writes_exponents_and_the_kernel_floor(tmp_path):
    out = tmp_path / "scaling"
    result = CliRunner().invoke(cli, ["hierarchy", "scaling", "--d", "4,5", "--n", "100,400", "--seeds", "2",
                                      "--steps", "20", "--target-error", "0.5", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert set(results["exponents"]) == {"deep", "kernel"}
    assert set(results["exponents"]["kernel"]) >= {"value", "low", "high"}
    assert results["learners"]["kernel"]["rel_test_mse"][0][-1] < 1e-6  # the kernel can express the target
    assert results["kernel_floor"]["n"] == 1600 and results["kernel_floor"]["reached"]
    assert (out / "scaling_nstar.png").stat().st_size > 1000


def test_scaling_command_defaults_are_the_study_defaults():
    from featviz.studies.scaling import DIMS, SIZES

    params = {p.name: p.default for p in cli.commands["hierarchy"].commands["scaling"].params}
    assert params["dims"] == ",".join(map(str, DIMS)) and params["sizes"] == ",".join(map(str, SIZES))
    # the default dimensions end where the exact kernel's monomials first outnumber the largest n
    assert math.comb(DIMS[-1] + 4, 4) > max(SIZES) >= math.comb(DIMS[-1] + 3, 4)


def test_scaling_exponent_gap_never_fits_a_censored_threshold():
    from featviz.studies.scaling import exponent_gap

    def t(v, censored=None):
        return {"value": None if censored else v, "low": v if censored == "right" else None,
                "high": v if censored == "left" else None, "censored": censored}

    dims = (4, 8, 16, 32)
    kernel = [[t(10 * d ** 3) for d in dims] for _ in range(3)]
    deep = [[t(20 * d) for d in dims] for _ in range(3)]
    kernel[1][0] = t(250, "left")  # one seed at or below the smallest n at d = 4
    deep[2][3] = t(16000, "right")  # one seed never reaching the level at d = 32
    gap = exponent_gap(dims, kernel, deep)
    assert gap["used"] == [8, 16] and gap["value"] == pytest.approx(2.0)
    assert gap["low"] == pytest.approx(2.0) and gap["high"] == pytest.approx(2.0)  # exact power laws: no spread
    kernel[0][2] = t(16000, "right")
    gap = exponent_gap(dims, kernel, deep)
    assert gap["value"] is None and gap["used"] == [8] and "at least 2" in gap["reason"]
