"""featviz.studies.correction: the step-2 experiment on tiny, fast configurations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from featviz.studies import correction as study

TINY = study.Config(d=6, k=2, alphas=(0.1, 0.4), seeds=2, widths=(6,), batch=256, max_steps=(60, 40, 40),
                    eval_every=20, patience=2, n_val=512, n_test=1024)


def _phase(config, alphas, seeds, steps, dtype="float64"):
    config = study.replace(config, dtype=dtype)
    a = torch.tensor(alphas, dtype=torch.float64)
    val = study._fixed_samples(config, seeds, config.n_val, 2, a, "cpu")
    init = study.init_params(config, config.widths[0], seeds, len(alphas))
    return study.train_phase(config, init, study.Phase("stage 1", study.STAGE1, config.lr, 1, steps, 0), a, seeds, val)


def test_the_analytic_projection_is_exact():
    pred = study.stage1_prediction(0.2, 2, 10)
    assert pred["diag"][:4] == pytest.approx([2.2, 2.2, 0.2, 0.2])
    assert pred["layer1_error"] == pytest.approx(0.2, rel=1e-12)
    # and it is the least-squares fit of G by x'Ax + c (Monte Carlo, diagonal features suffice by symmetry)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400_000, 6, generator=gen, dtype=torch.float64)
    y = study.target(x.unsqueeze(0), torch.tensor([0.2], dtype=torch.float64), 2)[0, 0]
    feats = torch.cat([x ** 2, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(feats, y.unsqueeze(1)).solution[:, 0]
    assert coef[:4].numpy() == pytest.approx([2.2, 2.2, 0.2, 0.2], abs=0.02)


def test_stage1_learns_the_analytic_projection():
    config = study.replace(TINY, widths=(8,), batch=512, eval_every=50, patience=8, plateau_tol=1e-3)
    params, record = _phase(config, (0.2,), [0], 3000, dtype="float32")
    assert record.plateaued.all() and record.steps.max() < 3000
    measured = study.layer1_measures(params["w1"][0, 0], params["a1"][0, 0], 2)["layer1_error"]
    assert measured == pytest.approx(0.2, rel=0.05)


def test_batched_runs_equal_runs_one_at_a_time():
    both, _ = _phase(TINY, (0.1, 0.4), [0, 1], 60)
    one, _ = _phase(TINY, (0.4,), [1], 60)
    for name in ("w1", "a1", "c"):
        assert torch.allclose(both[name][1, 1], one[name][0, 0], rtol=1e-9, atol=1e-12), name


def test_the_study_is_deterministic_and_reports_every_arm():
    first, second = study.run(TINY), study.run(TINY)
    first.pop("seconds"), second.pop("seconds")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["format"] == study.FORMAT
    assert set(first["arms"]) == set(study.ARMS)
    for arm in study.ARMS:
        for key in ("layer1_error", "final_rel_mse"):
            assert list(first["arms"][arm][key]) == ["0.1", "0.4"]
            assert len(first["arms"][arm][key]["0.4"]) == 2
    # layer 1 is frozen in the layerwise arms: its error after stage 2 is stage 1's
    assert first["arms"]["layerwise"]["layer1_error"] == first["stage1"]["layer1_error"]
    assert first["prediction"]["layer1_error"] == pytest.approx({"0.1": 0.1, "0.4": 0.4})
    p = first["primary"]
    assert p["low"] <= p["value"] <= p["high"] and p["level"] == 0.95
    # equal steps: the frozen control makes at least the steps of its unfrozen twin
    for key, steps in first["stages"]["joint-stage"]["steps"].items():
        assert all(f >= s for f, s in zip(first["stages"]["frozen-stage"]["steps"][key], steps))
    assert np.isfinite([first["slopes"][s]["value"] for s in ("stage1", "corrected")]).all()


def test_cli_writes_results_and_refuses_bad_alphas(tmp_path, capsys):
    from featviz.cli import main

    def invoke(args):
        try:
            main(args)
        except SystemExit as exc:
            return exc.code
        return 0

    out = tmp_path / "corr"
    code = invoke(["hierarchy", "correction", "--quick", "--alphas", "0.1,0.3", "--seeds", "1",
                               "--width", "4", "--d", "5", "--threads", "1", "--json", "--out", str(out)])
    assert code == 0
    data = json.loads((out / "results.json").read_text())
    assert data["alphas"] == [0.1, 0.3] and (out / "correction.png").exists()
    assert invoke(["hierarchy", "correction", "--quick", "--alphas", "0.1", "--out", str(tmp_path / "x")]) == 2
    assert "--alphas needs at least two values" in capsys.readouterr().err


def test_the_hand_written_gradient_is_autograd_s():
    config = study.replace(TINY, dtype="float64", d=6)
    p = study.init_params(config, 5, [0, 1, 2], 2)
    gen = torch.Generator().manual_seed(1)
    p = {k: v + 0.3 * torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in p.items()}
    x = torch.randn(3, 64, 6, generator=gen, dtype=torch.float64)
    y = study.target(x, torch.tensor([0.1, 0.4], dtype=torch.float64), 2)
    frozen_w1 = ("u2", "v2", "a1", "a2", "c")
    for depth, trainable in ((1, study.STAGE1), (2, study.STAGE2), (2, study.ALL), (2, frozen_w1)):
        leaf = {k: v.clone().requires_grad_(k in trainable) for k, v in p.items()}
        loss = ((study.forward(leaf, x, depth) - y) ** 2).mean(-1)
        auto = torch.autograd.grad(loss.sum(), [leaf[k] for k in trainable])
        q = {k: v.transpose(0, 1).contiguous() for k, v in p.items()}
        grads = {k: torch.zeros_like(q[k]) for k in trainable}
        mine = study._gradients(q, x, y.transpose(0, 1), depth, grads)
        assert torch.allclose(mine.transpose(0, 1), loss.detach(), rtol=1e-12)
        for k, a in zip(trainable, auto):
            assert torch.allclose(grads[k].transpose(0, 1), a, rtol=1e-10, atol=1e-12), (depth, k)


def test_the_floor_stops_runs_and_min_steps_keeps_them_going():
    config = study.replace(TINY, floor=10.0)   # every relative MSE is under 10: converged at the first check
    a = torch.tensor((0.1, 0.4), dtype=torch.float64)
    val = study._fixed_samples(config, [0], config.n_val, 2, a, "cpu")
    init = study.init_params(config, 6, [0], 2)
    phase = study.Phase("stage 1", study.STAGE1, config.lr, 1, 200, 0)
    _, record = study.train_phase(config, init, phase, a, [0], val)
    assert record.floored.all() and not record.plateaued.any() and (record.steps == config.eval_every).all()
    least = np.array([[60], [100]])
    _, record = study.train_phase(config, init, phase, a, [0], val, min_steps=least)
    assert record.floored.all() and (record.steps == least).all()
