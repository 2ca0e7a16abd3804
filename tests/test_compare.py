"""featviz compare: matched budgets, statistics, result files, determinism, bad input."""

from __future__ import annotations

import json
import math

import pytest

from featviz.errors import SpecError
from featviz.studies.compare import (COMPARE_MODES, CompareSpec, compare_groups, mode_budget, primary, run_compare,
                                     run_tests, seed_spread, stage_epochs, train_one)
from featviz.train import split_budget

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
    assert [s["epochs"] for s in budgets["layerwise+joint"]["stages"]] == list(split_budget(total, 4))


def test_remainders_go_to_the_last_stages_and_too_small_budgets_are_refused():
    assert stage_epochs("layerwise", 3, 10) == (3, 3, 4)
    assert stage_epochs("layerwise+joint", 3, 30) == (7, 7, 8, 8)
    assert stage_epochs("adv", 3, 5) == (5,)
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
def test_seed_spread_uses_the_sample_deviation_and_keeps_undefined_seeds():
    assert seed_spread([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "values": [1.0, 2.0, 3.0]}
    out = seed_spread([4.0, None, 6.0])
    assert out["mean"] == 5.0 and out["std"] == pytest.approx(math.sqrt(2)) and out["values"] == [4.0, None, 6.0]
    assert seed_spread([0.5]) == {"mean": 0.5, "std": 0.0, "values": [0.5]}


def test_compare_groups_pairs_seeds_and_skips_undefined_ones():
    t = compare_groups("robust", "layerwise", [0.1, 0.2, None, 0.5], "joint", [0.4, 0.3, 0.9, 0.45])
    assert t["n"] == 3 and t["a_below_b_seeds"] == 2 and not t["a_below_b_every_seed"]
    t = compare_groups("robust", "layerwise", [0.0, 0.1, 0.0], "joint", [0.4, 0.5, 0.45])
    assert t["a_below_b_every_seed"] and t["permutation_p_value"] == pytest.approx(2 / 20)
    assert t["statistic"] < 0 and 0 < t["p_value"] < 0.05
    # paired over seeds: 3 pairs, all below; the exact sign-flip p is 2 / 2³
    assert t["paired"]["p_permutation"] == pytest.approx(2 / 8) and t["paired"]["p_sign"] == pytest.approx(0.25)


def test_tests_are_holm_corrected_and_the_primary_endpoint_is_paired():
    modes = {m: {"clean_accuracy": seed_spread(v), "robust": [{"eps": 0.1, **seed_spread(r)}],
                 "min_eps": seed_spread(v), "render": {}}
             for m, v, r in (("joint", [0.9, 0.91, 0.92], [0.5, 0.6, 0.55]),
                             ("layerwise", [0.8, 0.82, 0.81], [0.3, 0.35, 0.3]))}
    tests = run_tests(modes)
    ps = [t["paired"]["p_permutation"] for t in tests]
    assert [t["p_holm"] for t in tests] == pytest.approx([min(1.0, 3 * p) for p in ps])  # equal p: all × 3
    assert {t["role"] for t in tests} == {"secondary"}  # no primary declared: one family of 3
    p = primary(modes, [0.0, 0.1, 0.2])
    assert p["name"].startswith("robust accuracy at ε=0.1: joint − layerwise") and p["eps"] == 0.1
    assert p["value"] == pytest.approx(0.2333333) and p["low"] <= p["value"] <= p["high"] and p["level"] == 0.95


def test_the_primary_test_stands_alone_and_holm_spans_every_secondary_test():
    modes = {m: {"clean_accuracy": seed_spread(v), "robust": [{"eps": e, **seed_spread(r)} for e, r in rob],
                 "min_eps": seed_spread(v), "render": {}}
             for m, v, rob in (("joint", [0.9, 0.91, 0.92, 0.93], [(0.05, [0.5, 0.6, 0.55, 0.4]), (0.1, [0.1, 0.2, 0.1, 0.3])]),
                               ("layerwise", [0.8, 0.82, 0.81, 0.95], [(0.05, [0.3, 0.35, 0.3, 0.2]), (0.1, [0.0, 0.1, 0.2, 0.1])]),
                               ("layerwise+joint", [0.85, 0.9, 0.8, 0.9], [(0.05, [0.4, 0.5, 0.3, 0.3]), (0.1, [0.1, 0.0, 0.0, 0.1])]))}
    tests = run_tests(modes, primary_eps=0.05)
    roles = [(t["a"], t["b"], t.get("eps"), t["role"]) for t in tests]
    assert [r for r in roles if r[3] == "primary"] == [("joint", "layerwise", 0.05, "primary")]
    main = next(t for t in tests if t["role"] == "primary")
    assert main["p_holm"] is None and "outside the Holm family" in main["statement"]
    secondary = [t for t in tests if t["role"] == "secondary"]
    assert len(secondary) == 3 * 4 - 1  # 3 pairs × (clean, ε=0.05, ε=0.1, min ε), less the primary
    raw = [t["paired"]["p_permutation"] for t in secondary]
    m = len(raw)
    order = sorted(range(m), key=lambda i: raw[i])
    running, expected = 0.0, [0.0] * m
    for rank, i in enumerate(order):  # Holm by hand over the 11 secondary tests
        running = max(running, min(1.0, (m - rank) * raw[i]))
        expected[i] = running
    assert [t["p_holm"] for t in secondary] == pytest.approx(expected)


# ------------------------------------------------------------------ the study
def test_results_json_fields_and_plots(run_cli, tmp_path):
    out = tmp_path / "cmp"
    r = run_cli("compare", "--modes", "joint,layerwise", "--seeds", "2", *TINY, "--out", out, "--json")
    assert r.code == 0, r.err
    res = json.loads((out / "results.json").read_text())
    assert json.loads(r.out)["modes"].keys() == res["modes"].keys() == {"joint", "layerwise"}
    assert res["attack"]["name"] == res["attack"]["label"] == "autoattack-fast"
    assert res["format"] == "featviz-compare/1" and res["headline_eps"] == [0.1]
    assert res["primary"]["name"].startswith("robust accuracy at ε=0.1: joint − layerwise")
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
    (["--modes", "layerwise+joint", "--epochs-total", "2"], "at least 4"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run_cli, tmp_path, args, message):
    out = tmp_path / "never"
    r = run_cli("compare", *TINY, *args, "--out", out)
    assert r.code == 2
    assert len(r.err.strip().splitlines()) == 1 and message in r.err
    assert not out.exists() and list(tmp_path.iterdir()) == []
