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
