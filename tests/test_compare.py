"""featviz compare: matched budgets, statistics, result files, determinism, bad input."""

from __future__ import annotations

import json
import math

import pytest

from featviz.studies.compare import (COMPARE_MODES, CompareSpec, compare_groups, mean_std, mode_budget, permutation_test,
                             run_compare, stage_epochs, train_one, welch_test)
from featviz.errors import SpecError

# A tiny comparison: width-2 nets on 8×8 digits, 20 attacked test images, one unit per block.
TINY = ["--width", "2", "--image-size", "8", "--epochs-total", "3", "--eps", "0,0.1", "--n-examples", "20",
        "--render-units", "1", "--render-steps", "4", "--bisect-steps", "0"]


def tiny_spec(**kw) -> CompareSpec:
    base = dict(modes=("joint", "layerwise"), seeds=1, epochs_total=3, eps=(0.0, 0.1), width=2, image_size=8,
                n_examples=20, render_units=1, render_steps=4, bisect_steps=0)
    return CompareSpec(**(base | kw))


def _strip_times(obj):
    if isinstance(obj, dict):
        return {k: _strip_times(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [_strip_times(v) for v in obj]
    return obj


# ------------------------------------------------------------------ budgets
@pytest.mark.parametrize("total", [12, 24, 30])
def test_stage_plans_give_every_mode_the_same_epochs(total):
    budgets = {m: mode_budget(m, 3, total, n_train=1437, batch_size=64) for m in COMPARE_MODES}
    assert {b["epochs"] for b in budgets.values()} == {total}
    assert {b["total_steps"] for b in budgets.values()} == {total * 23}
    assert [s["epochs"] for s in budgets["layerwise"]["stages"]] == [total // 3] * 3
    per = total // 4
    assert [s["epochs"] for s in budgets["layerwise+joint"]["stages"]] == [per] * 3 + [total - 3 * per]


def test_unsplittable_budgets_are_refused():
    with pytest.raises(SpecError, match="multiple of 3"):
        stage_epochs("layerwise", 3, 10)
    with pytest.raises(SpecError, match="at least 4"):
        stage_epochs("layerwise+joint", 3, 3)


def test_trained_models_take_exactly_the_matched_number_of_optimizer_steps(tiny_digits):
    """Count real optimizer steps (a global step hook) while training each mode."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    data = tiny_digits  # 300 training images, batch 64 -> 5 steps per epoch
    spec = CompareSpec(modes=COMPARE_MODES, epochs_total=6, width=2, image_size=8, adv_steps=1)
    counts = {}
    for mode in ("joint", "layerwise", "layerwise+joint"):
        n = [0]
        handle = register_optimizer_step_post_hook(lambda *a: n.__setitem__(0, n[0] + 1))
        try:
            ckpt = train_one(spec, mode, 0, data)
        finally:
            handle.remove()
        counts[mode] = n[0]
        assert ckpt.card["training"]["steps"] == n[0]
    assert counts == {"joint": 30, "layerwise": 30, "layerwise+joint": 30}


# ------------------------------------------------------------------ statistics
def test_mean_std_uses_the_sample_deviation_and_keeps_undefined_seeds():
    assert mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "values": [1.0, 2.0, 3.0]}
    out = mean_std([4.0, None, 6.0])
    assert out["mean"] == 5.0 and out["std"] == pytest.approx(math.sqrt(2)) and out["values"] == [4.0, None, 6.0]
    assert mean_std([0.5]) == {"mean": 0.5, "std": 0.0, "values": [0.5]}


def test_welch_and_permutation_match_a_hand_computed_case():
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    # means 2 and 5, variances 1 and 1: t = -3 / sqrt(1/3 + 1/3) = -3.6742, Welch df = 4;
    # for 4 degrees of freedom the t CDF is 1/2 + u(1 - u²/3)·3/4 with u = t / sqrt(t² + 4).
    t, p = welch_test(a, b)
    assert t == pytest.approx(-3 / math.sqrt(2 / 3), rel=1e-9)
    u = abs(t) / math.sqrt(t * t + 4)
    assert p == pytest.approx(2 * (1 - (0.5 + 0.75 * u * (1 - u * u / 3))), rel=1e-6)
    # of the 20 ways to split {1..6} into 3 + 3 only {1,2,3} | {4,5,6} and its mirror reach |diff| = 3
    diff, perm = permutation_test(a, b)
    assert diff == -3.0 and perm == pytest.approx(2 / 20)
    # identical groups: every split is at least as extreme as a zero difference
    assert permutation_test([1.0, 1.0], [1.0, 1.0]) == (0.0, 1.0)
    assert welch_test([1.0, 1.0], [1.0, 1.0]) == (None, None)
    # five seeds per side: the smallest possible two-sided p is 2 / C(10, 5)
    assert permutation_test([0.0] * 5, [1.0, 1.1, 1.2, 1.3, 1.4])[1] == pytest.approx(2 / 252)


def test_compare_groups_pairs_seeds_and_skips_undefined_ones():
    t = compare_groups("robust", "layerwise", [0.1, 0.2, None, 0.5], "joint", [0.4, 0.3, 0.9, 0.45])
    assert t["n"] == 3 and t["a_below_b_seeds"] == 2 and not t["a_below_b_every_seed"]
    t = compare_groups("robust", "layerwise", [0.0, 0.1, 0.0], "joint", [0.4, 0.5, 0.45])
    assert t["a_below_b_every_seed"] and t["permutation_p_value"] == pytest.approx(2 / 20)
    assert t["statistic"] < 0 and 0 < t["p_value"] < 0.05


# ------------------------------------------------------------------ the study
def test_results_json_fields_and_plots(run_cli, tmp_path):
    out = tmp_path / "cmp"
    r = run_cli("compare", "--modes", "joint,layerwise", "--seeds", "2", *TINY, "--out", out, "--json")
    assert r.code == 0, r.err
    res = json.loads((out / "results.json").read_text())
    assert json.loads(r.out)["modes"].keys() == res["modes"].keys() == {"joint", "layerwise"}
    assert res["attack"]["name"] in ("autoattack-fast", "pgd")
    if res["attack"]["name"] == "pgd":
        assert res["attack"]["fallback"] and res["attack"]["restarts"] == 5 and res["attack"]["loss"] == "margin"
    assert res["budget"]["total_steps"] == {"joint": 3 * 23, "layerwise": 3 * 23}
    for mode, m in res["modes"].items():
        assert m["seeds"] == [0, 1] and m["steps"] == [69, 69]
        ca = m["clean_accuracy"]
        assert len(ca["values"]) == 2 and ca["mean"] == pytest.approx(sum(ca["values"]) / 2)
        assert ca["std"] == pytest.approx(abs(ca["values"][0] - ca["values"][1]) / math.sqrt(2))
        assert [p["eps"] for p in m["robust"]] == [0.0, 0.1]
        assert m["robust"][0]["values"] == ca["values"]  # ε = 0 is clean accuracy
        assert all(b <= a + 1e-12 for a, b in zip(m["robust"][0]["values"], m["robust"][1]["values"]))
        assert set(m["render"]) == {"block1", "block2", "block3"}
        for block in m["render"].values():
            assert {"none", "standard", "data"} <= set(block)
            assert set(block["none"]["hf_ratio"]) == {"mean", "std", "values"}
            hf = block["none"]["hf_ratio"]  # null when every render of the block is flat (no spectrum)
            assert (hf["mean"] is not None and 0 <= hf["mean"] <= 1) or block["none"]["flat"]["mean"] > 0
    assert 0 <= res["baseline"]["hf_ratio"] <= 1 and res["baseline"]["tv"] > 0
    whats = [t["what"] for t in res["tests"]]
    assert "clean accuracy" in whats and "robust accuracy at ε=0.1" in whats
    for t in res["tests"]:
        assert {"what", "statistic", "p_value", "permutation_p_value"} <= set(t)
        assert t["permutation_p_value"] is None or 0 < t["permutation_p_value"] <= 1
    for name in ("robustness.png", "render_metrics.png", "table.md"):
        assert (out / name).stat().st_size > 1000
    assert sorted(p.name for p in (out / "models").iterdir()) == [
        "joint-seed0", "joint-seed1", "layerwise-seed0", "layerwise-seed1"]

    # the gallery page reads the folder
    from featviz.report.compare_pages import write_compare_page
    from featviz.report.site import Site

    site = Site(tmp_path / "site", "test")
    page = write_compare_page(site, out)
    html = (tmp_path / "site" / page["page"]).read_text()
    clean = res["modes"]["joint"]["clean_accuracy"]
    assert f"{100 * clean['mean']:.3g} ± {100 * clean['std']:.2g}%" in html and "layerwise" in html
    assert (tmp_path / "site" / "compare" / "robustness.png").is_file()

    # reuse: the same recipe is not trained again, and gives the same numbers
    again = tmp_path / "again"
    r = run_cli("compare", "--modes", "joint", "--seeds", "2", *TINY, "--reuse", out, "--out", again,
                "--no-save-models")
    assert r.code == 0, r.err
    res2 = json.loads((again / "results.json").read_text())
    assert sorted(res2["reused"]) == ["joint-seed0", "joint-seed1"]
    assert res2["modes"]["joint"]["robust"] == res["modes"]["joint"]["robust"]
    assert not (again / "models").exists()


def test_same_seed_same_numbers():
    a = run_compare(tiny_spec(modes=("layerwise",), seed=3), progress=False)
    b = run_compare(tiny_spec(modes=("layerwise",), seed=3), progress=False)
    assert _strip_times(a) == _strip_times(b)
    assert a["modes"]["layerwise"]["seeds"] == [3] and a["reused"] == []


@pytest.mark.parametrize("args, message", [
    (["--modes", "joint,sideways"], "unknown mode"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--eps", "0,1.5"], "[0, 1]"),
    (["--eps", "-0.1"], "[0, 1]"),
    (["--epochs-total", "10"], "multiple of 3"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run_cli, tmp_path, args, message):
    out = tmp_path / "never"
    r = run_cli("compare", *TINY, *args, "--out", out)
    assert r.code == 2
    assert len(r.err.strip().splitlines()) == 1 and message in r.err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_modes_list_matches_the_library():
    from featviz.cli.cmd_compare import MODE_NAMES

    assert MODE_NAMES == COMPARE_MODES
