"""`featviz demo --quick`: the whole pipeline on tiny budgets, models reused on the second run."""

from __future__ import annotations

import json
from pathlib import Path

from featviz.demo import QUICK, expected_recipe, model_specs


def test_quick_demo_saves_models_then_reuses_them_and_builds_the_gallery(tmp_path, run_cli):
    models = tmp_path / "models"
    res = run_cli("demo", "--quick", "--models-only", "--save-models", "--models", models, "--json")
    assert res.code == 0, res.err
    first = json.loads(res.out)
    assert [s["name"] for s in first["stages"]] == ["models"] and first["stages"][0]["status"] == "done"
    saved = sorted(p.name for p in models.iterdir())
    assert {"digits-joint", "digits-layerwise", "synthetic-joint"} <= set(saved)
    card = json.loads((models / "digits-joint" / "card.json").read_text())
    assert card["training"]["epochs"] == QUICK.epochs and card["name"] == "digits-joint"

    out = tmp_path / "gallery"
    res = run_cli("demo", "--quick", "--models", models, "--out", out, "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    stages = {s["name"]: s for s in summary["stages"]}
    assert list(stages) == ["models", "hierarchy", "visualize", "attacks", "gallery"]
    assert stages["models"]["status"] == "reused"  # same recipe: nothing retrained
    assert Path(summary["index"]) == out / "index.html" and (out / "index.html").is_file()
    names = [m["name"] for m in summary["models"]]
    assert names[:2] == ["digits-joint", "digits-layerwise"]
    assert all(Path(m["checkpoint"]).parent == models for m in summary["models"])
    for layer in ("block1", "block2", "block3"):  # --quick renders block2 only
        page = (out / f"model-digits-joint-{layer}.html").read_text(encoding="utf-8")
        rendered = "<code>none</code>" in page and "<code>standard</code>" in page
        assert rendered == (layer in QUICK.vis_layers), layer
        assert (out / f"compare-{layer}.html").is_file()
    assert (out / "hierarchy.html").is_file() and (out / "results" / "hierarchy" / "results.json").is_file()
    vis = json.loads((out / "results" / "vis" / "digits-joint" / "metrics.json").read_text())
    assert {im["reg"] for im in vis["images"]} == {"none", "standard"}
    index = (out / "index.html").read_text(encoding="utf-8")
    for stage in stages.values():  # a stage that could not run says so on the index, never silently
        if stage["status"] == "skipped":
            assert f"{stage['name']} stage skipped" in index
    assert json.loads((out / "results" / "summary.json").read_text())["stages"] == summary["stages"]


def test_reuse_needs_the_same_recipe():
    joint, layerwise = model_specs(QUICK)[:2]
    assert expected_recipe(joint) != expected_recipe(layerwise)
    assert expected_recipe(joint)["widths"] == [QUICK.width, 2 * QUICK.width, 2 * QUICK.width]


def test_demo_without_out_is_a_one_line_error(run_cli):
    res = run_cli("demo", "--quick")
    assert res.code == 2 and "--out" in res.err and len(res.err.strip().splitlines()) == 1
