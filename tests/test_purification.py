"""Feature purification: weight decomposition, --init-from, the study's results."""

from __future__ import annotations

import json

import pytest
import torch

from featviz.devices import generator
from featviz.studies.purification import (MODELS, GaussianNoise, PurificationConfig, cosines, decompose, run, spread,
                                          unused_directions, unused_energy)


def test_decomposition_recovers_known_beta_and_residual():
    gen = generator(0)
    w_adv = torch.randn(6, 9, generator=gen, dtype=torch.float64)
    noise = torch.randn(6, 9, generator=gen, dtype=torch.float64)
    # the residual must be orthogonal to w_adv for β to be the least-squares one
    v = noise - ((noise * w_adv).sum(1) / (w_adv * w_adv).sum(1))[:, None] * w_adv
    beta = torch.tensor([2.0, -0.5, 1.0, 0.1, 3.0, -1.5], dtype=torch.float64)
    w_clean = beta[:, None] * w_adv + v
    dec = decompose(w_clean.view(6, 1, 3, 3), w_adv.view(6, 1, 3, 3))
    assert torch.allclose(dec["beta"], beta, atol=1e-12)
    assert torch.allclose(dec["residual"], v, atol=1e-12)
    expected = v.norm(dim=1) / (beta[:, None] * w_adv).norm(dim=1)
    assert torch.allclose(dec["residual_ratio"], expected, atol=1e-12)
    # identical weights: β = 1, no residual; cosines of a unit with itself are 1
    same = decompose(w_adv, w_adv)
    assert torch.allclose(same["beta"], torch.ones(6, dtype=torch.float64)) and same["residual_ratio"].max() < 1e-12
    assert torch.allclose(cosines(w_adv, -2 * w_adv), -torch.ones(6, dtype=torch.float64))


def test_unused_energy_finds_filter_energy_outside_the_datas_patches():
    """Images that vary only along a horizontal gradient: 3×3 patches span 2 directions
    (constant and horizontal ramp); a filter inside that span has no unused energy, one
    orthogonal to it has all of it, and a random filter the complement's share."""
    gen = generator(0)
    ramp = torch.linspace(-3.5, 3.5, 8)[None, None, None, :].expand(1, 1, 8, 8)  # one unit per pixel
    x = torch.randn(64, 1, 1, 1, generator=gen) * ramp + torch.randn(64, 1, 1, 1, generator=gen)
    directions = unused_directions(x, (3, 3), share=0.01)
    assert directions.shape == (7, 9)  # 9 patch directions, 2 used
    used = torch.tensor([[1.0, 2.0, 3.0] * 3], dtype=torch.float64).view(1, 1, 3, 3)
    unused = torch.tensor([[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64).view(1, 1, 3, 3)
    energy = unused_energy(torch.cat([used, unused]), directions)
    assert energy[0] == pytest.approx(0.0, abs=1e-9) and energy[1] == pytest.approx(1.0, abs=1e-9)
    assert unused_energy(used, directions[:0]).tolist() == [0.0]


def test_noise_control_matches_the_pgd_ball_in_l2():
    x = torch.full((200, 1, 16, 16), 0.5)
    noisy = GaussianNoise(0.1, seed=0)(None, x, None)
    norms = (noisy - x).flatten(1).norm(dim=1)
    assert norms.mean().item() == pytest.approx(0.1 * 16, rel=0.05)  # ε√D: a PGD L∞ corner's L2 norm
    again = GaussianNoise(0.1, seed=0)(None, x, None)
    assert torch.equal(noisy, again) and noisy.min() >= 0 and noisy.max() <= 1


def test_controls_decide_the_claim():
    from featviz.studies.purification import _controls

    cfg = PurificationConfig()

    def seed(adv, noise, wd):
        return {"images": {name: {"block2": {"median_hf_ratio": v}} for name, v in
                           (("adversarial", adv), ("clean", 0.9), ("noise", noise), ("weight_decay", wd))}}

    beats = _controls(cfg, [seed(0.3, 0.6, 0.8), seed(0.35, 0.7, 0.85), seed(0.25, 0.65, 0.9)], ["block2"])
    assert beats["claims"]["block2"]["purification"] is True
    d = beats["comparisons"]["block2"]["adversarial_minus_noise"]
    assert d["value"] == pytest.approx(-1.05 / 3) and d["high"] < 0
    ties = _controls(cfg, [seed(0.3, 0.2, 0.8), seed(0.35, 0.5, 0.85), seed(0.25, 0.3, 0.9)], ["block2"])
    assert ties["claims"]["block2"]["purification"] is False


def test_spread_over_seeds():
    s = spread([1.0, 3.0, None])
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(2 ** 0.5) and s["per_seed"] == [1.0, 3.0, None]
    assert spread([0.5])["std"] == 0.0 and spread([None])["mean"] is None


# ------------------------------------------------------------------ --init-from

def _train(run_cli, out, *extra):
    return run_cli("train", "--dataset", "digits", "--image-size", "8", "--width", "2", "--depth", "2",
                   "--epochs", "1", "--batch-size", "256", "--out", out, *extra)


def test_init_from_starts_from_the_parent_weights_and_records_it(run_cli, tmp_path):
    from featviz.checkpoint import load_checkpoint, read_card
    from featviz.data import load_dataset
    from featviz.recipes import TrainSpec, build_for, inherit_weights

    parent = tmp_path / "parent"
    assert _train(run_cli, parent).code == 0
    spec = TrainSpec(image_size=8, width=2, depth=2, seed=1)
    model = build_for(load_dataset("digits", image_size=8), spec)
    record = inherit_weights(model, parent)  # step 0 of a run with --init-from
    reference = load_checkpoint(parent).model.state_dict()
    assert all(torch.equal(t, reference[k]) for k, t in model.state_dict().items())
    child = tmp_path / "child"
    res = _train(run_cli, child, "--init-from", parent, "--adv", "pgd", "--eps", "0.1", "--adv-steps", "1")
    assert res.code == 0, res.err
    card = read_card(child)
    assert card["training"]["init_from"]["path"] == str(parent) == record["path"]
    assert card["training"]["init_from"]["sha256"] == record["sha256"] and len(record["sha256"]) == 64
    assert card["training"]["adv"]["attack"] == "pgd" and card["training"]["spec"]["init_from"] == str(parent)
    # one epoch moved the weights, but they stay far closer to the parent than a fresh start does
    trained = load_checkpoint(child).model.block(1).conv.weight
    fresh = build_for(load_dataset("digits", image_size=8), TrainSpec(image_size=8, width=2, depth=2)).block(1)
    assert not torch.equal(trained, reference["block1.conv.weight"])
    assert (trained - reference["block1.conv.weight"]).norm() < (fresh.conv.weight - reference["block1.conv.weight"]).norm()


def test_init_from_rejects_another_architecture(run_cli, tmp_path):
    parent = tmp_path / "parent"
    assert _train(run_cli, parent).code == 0
    res = run_cli("train", "--dataset", "digits", "--image-size", "8", "--width", "3", "--depth", "2", "--epochs", "1",
                  "--init-from", parent, "--out", tmp_path / "child")
    assert res.code == 2
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "architecture differs" in lines[0] and "widths" in lines[0]
    assert "Traceback" not in res.err and not (tmp_path / "child").exists()


# ------------------------------------------------------------------ the study

def test_study_writes_self_contained_results(tmp_path):
    cfg = PurificationConfig(epochs=2, width=2, adv_steps=1, render_steps=3, robust_eval_steps=1, image_size=8)
    results = run(cfg, seeds=2, out=tmp_path / "study", progress=False)
    on_disk = json.loads((tmp_path / "study" / "results.json").read_text())
    p = on_disk["purification"]
    assert p == json.loads(json.dumps(results["purification"]))
    for name in ("clean", "adversarial", "clean_scratch"):
        for block in ("block2", "block3"):
            stat = p["hf_ratio"][name][block]
            assert len(stat["per_seed"]) == 2 and set(stat) == {"mean", "std", "min", "max", "per_seed"}
    assert p["hf_ratio"]["data"] == pytest.approx(on_disk["baseline"]["hf_ratio"]) and 0 < p["hf_ratio"]["data"] < 1
    assert set(p["residual_ratio"]) == {"block1", "block2", "block3"}
    seed0 = on_disk["per_seed"][0]
    assert len(seed0["weights"]["block1"]["residual_ratio"]) == 2  # one per unit of block1
    assert seed0["training"]["clean"]["total_epochs"] == seed0["training"]["adversarial"]["total_epochs"] == 2
    assert on_disk["per_seed"][1]["seed"] == 1
    assert all((tmp_path / "study" / f).is_file() for f in ("hf_ratio.png", "residual.png", "renders.png"))


def test_combining_runs_over_disjoint_seeds_equals_one_run():
    from featviz.studies.purification import _summarize, combine

    cfg = PurificationConfig(epochs=2, width=2, adv_steps=1, render_steps=3, robust_eval_steps=0, image_size=8)

    def fake(seed, hf_clean, hf_adv):
        images = {name: {b: {"median_hf_ratio": hf, "median_hf_ratio_converged": hf, "n": 4, "n_converged": 2}
                         for b in ("block2", "block3")}
                  for name, hf in (("clean", hf_clean), ("adversarial", hf_adv), ("clean_scratch", hf_clean),
                                   ("noise", hf_clean), ("weight_decay", hf_clean))}
        weights = {"block1": {"residual_ratio": [0.1 * (seed + 1)], "residual_ratio_scratch": [0.2],
                              "cos_to_init": {n: [0.5] for n in ("parent",) + MODELS}}}
        training = {n: {"test_accuracy": 0.9, "robust_accuracy": None} for n in MODELS}
        return {"seed": seed, "images": images, "weights": weights, "training": training, "baseline": {"hf_ratio": 0.02}}

    seeds = [fake(0, 0.8, 0.4), fake(1, 0.6, 0.6)]
    config = {**cfg.__dict__, "blocks": list(cfg.blocks)}
    parts = [{"per_seed": [s], "config": config, "seconds": 1.0} for s in reversed(seeds)]
    merged = combine(parts)
    assert [s["seed"] for s in merged["per_seed"]] == [0, 1]
    assert merged["purification"] == _summarize(cfg, seeds, {"hf_ratio": 0.02})
    assert merged["purification"]["adv_over_clean"]["block2"]["per_seed"] == [0.5, 1.0]
    ratio = merged["purification"]["adv_over_clean"]["block2"]
    assert ratio["value"] == pytest.approx(0.5 / 0.7)  # a ratio of means, not the mean of per-seed ratios (0.75)
    assert ratio["paired"] and ratio["low"] <= ratio["value"] <= ratio["high"]
    assert merged["format"] == "featviz-purification/2" and merged["headline_eps"] == [cfg.eps]
    assert merged["primary"]["value"] == merged["purification"]["adv_over_clean"]["block3"]["value"]
    assert merged["purification"]["target"]["met"]["block2"] is False
    with pytest.raises(Exception, match="share a seed"):
        combine(parts + parts[:1])
