"""The hierarchy study: alignment metrics, targets, learners, the driver and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from featviz.cli import cli, main
from featviz.devices import generator
from featviz.errors import FeatvizError
from featviz.hierarchy import (LEARNERS, FeatureProbe, ToyTarget, deep_learner, feature_r2, fit_kernel,
                               make_dataset, mean_cca, preset, run_study, shallow_learner, shallow_width,
                               train_neural)
from featviz.hierarchy.learners import parameter_count


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
    deep = parameter_count(deep_learner(20, 48, 3, seed=0))
    width = shallow_width(20, 48, 3)
    assert width == 415  # round((9123 - 1) / 22)
    assert abs(parameter_count(shallow_learner(20, width, seed=0)) - deep) / deep < 0.01


@pytest.fixture(scope="module")
def tiny():
    config = preset("quick", d=8, k=2, depth=2, width=8, n_train=600, epochs=4)
    data = make_dataset(config, seed=0)
    return config, data, FeatureProbe.from_target(data.teacher, data.x_test[:400])


def test_layerwise_training_keeps_frozen_layers_fixed(tiny):
    config, data, probe = tiny
    model = deep_learner(config.d, 8, config.depth, 0)
    untrained = probe.r2(model)[0]
    fit = train_neural(model, data, probe, "layerwise", epochs=3, lr=3e-2, batch_size=128, seed=0)
    assert fit.curve.stage == ["layer1"] * 3 + ["layer2"] * 3
    layer1 = [epoch[0] for epoch in fit.curve.feature_r2]
    # After stage 1, block 1 is frozen (weights and BatchNorm statistics): its R² cannot move.
    assert layer1[3:] == [layer1[2]] * 3
    assert layer1[2] > untrained + 0.1  # and stage 1 did learn the teacher's first layer


def test_neural_training_is_deterministic_and_finite(tiny):
    config, data, probe = tiny
    fits = [train_neural(deep_learner(config.d, 8, config.depth, 5), data, probe, "joint", epochs=2, lr=1e-2,
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
    for name in LEARNERS:
        row = results["summary"][name]
        assert row["rel_test_mse"] > 0 and math.isfinite(row["rel_test_mse"])
        assert row["epochs"] == (0 if name == "kernel" else config.epochs)
        expected_layers = {"kernel": 0, "shallow": 1}.get(name, config.depth)
        assert len(row["feature_r2"]) == expected_layers
    for name in ("joint", "layerwise", "layerwise+joint", "shallow"):
        (run,) = results["curves"][name]
        epochs = {"joint": 1, "shallow": 1, "layerwise": config.depth}.get(name, config.depth + 1) * config.epochs
        assert len(run["test_rel_mse"]) == len(run["feature_r2"]) == epochs
    assert results["config"]["alpha"] == config.alpha and results["seconds"] > 0
    assert results["n_sweep"]["n"] == [2000, config.n_train] and len(results["width_sweep"]["width"]) == 2
    for stem in ("training_error", "feature_r2", "error_vs_n", "error_vs_width"):
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


def test_run_study_returns_the_written_dict_shape():
    config = preset("quick", d=8, k=2, depth=2, width=8, n_train=400, epochs=2, n_sweep=(), width_sweep=(),
                    lr_grid=(1e-2, 1e-1))
    results = run_study(config, progress=False)
    assert set(results["lr_search"]["joint"]) == {"0.01", "0.1"}
    chosen = results["config"]["lr"]["joint"]
    table = results["lr_search"]["joint"]
    assert table[f"{chosen:g}"] == min(v for v in table.values() if v is not None)  # chosen on validation
    assert results["n_sweep"]["n"] == [400] and results["width_sweep"]["width"] == []


def test_worker_processes_give_the_same_fits_as_one_process():
    from featviz.hierarchy.study import Task, run_tasks

    config = preset("quick", d=8, k=2, depth=2, width=8, n_train=400, epochs=2)
    tasks = [Task("joint", 0, 1e-2), Task("chain", 1, 1e-2), Task("shallow", 0, 1e-2, n=200)]
    here = run_tasks(config, tasks, workers=1)
    there = run_tasks(config, tasks, workers=2)
    for task in tasks:
        assert [f.curve.to_dict() for f in here[task]] == [f.curve.to_dict() for f in there[task]]
        assert [f.rel_test_mse for f in here[task]] == [f.rel_test_mse for f in there[task]]
    assert len(here[Task("chain", 1, 1e-2)]) == 2  # layerwise, then layerwise+joint
