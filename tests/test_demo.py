"""`featviz demo --quick`: the whole pipeline on tiny budgets, models reused on the second run."""

from __future__ import annotations

import json
from pathlib import Path

from featviz.demo import QUICK, model_specs
from featviz.reuse import expected_recipe


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
    shipped = tmp_path / "studies" / "image"  # a shipped study folder: linked, not rerun
    res = run_cli("demo", "--quick", "--models", models, "--studies", shipped.parent, "--out", out, "--json")
    assert res.code == 2 and "--studies" in res.err  # not a folder yet
    shipped.parent.mkdir()
    res = run_cli("demo", "--quick", "--models", models, "--studies", shipped.parent, "--out", out, "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    stages = {s["name"]: s for s in summary["stages"]}
    assert list(stages) == ["models", "hierarchy", "visualize", "attacks", "robust", "compare", "image-study",
                            "studies", "gallery"]
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
    # the overview quotes the strong ensemble's figure, labelled with the attack and the images
    robust = json.loads((out / "results" / "robust" / "results.json").read_text())
    assert all(m["evaluations"][0]["attack"] == "autoattack-fast" for m in robust["models"])
    assert f"autoattack-fast, {QUICK.robust_examples} test images" in (out / "index.html").read_text(encoding="utf-8")
    # the demo-sized image study carries the purification section, and both get a page
    image = json.loads((out / "results" / "image-study" / "results.json").read_text())
    assert {"teacher", "frozen_vs_unfrozen", "purification"} <= set(image)
    assert set(image["purification"]["hf_ratio"]) >= {"clean", "adversarial", "data"}
    index_html = (out / "index.html").read_text(encoding="utf-8")
    assert "study-image-study-demo-sized-1-seed.html" in index_html
    assert "study-compare-demo-sized-2-seeds.html" in index_html
    compare = json.loads((out / "results" / "compare" / "results.json").read_text())
    assert len(set(compare["budget"]["total_steps"].values())) == 1  # matched budgets
    assert "study-purification-demo-sized-1-seed.html" in index_html
    assert "Feature purification" in (out / "study-purification-demo-sized-1-seed.html").read_text(encoding="utf-8")
    vis = json.loads((out / "results" / "vis" / "digits-joint" / "metrics.json").read_text())
    assert {im["reg"] for im in vis["images"]} == {"none", "standard", "pca"}
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


def test_the_pipeline_is_a_list_of_stages_run_in_order(tmp_path):
    import torch

    from featviz.demo import PIPELINE, Demo

    assert [name for name, _ in PIPELINE] == ["models", "hierarchy", "visualize", "attacks", "robust", "compare",
                                             "image-study", "studies", "gallery"]
    demo = Demo(tmp_path, QUICK, seed=0, device=torch.device("cpu"), models_dir=None, save_models=False,
                retrain=False, progress=False)
    ran = []

    def first(self, stage):
        ran.append(("first", self is demo))

    def second(self, stage):
        ran.append(("second", [s.name for s in self.stages]))
        stage.status, stage.note = "skipped", "nothing to do"

    demo.run([("first", first), ("second", second)])
    assert ran == [("first", True), ("second", ["first"])]
    assert [(s.name, s.status, s.note) for s in demo.stages] == [("first", "done", ""),
                                                                  ("second", "skipped", "nothing to do")]


def test_reusable_refuses_a_corrupt_or_different_checkpoint(tmp_path):
    from featviz.reuse import reusable

    spec = model_specs(QUICK)[0]
    assert reusable(tmp_path / "missing", spec) is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "card.json").write_text("{not json")
    assert reusable(tmp_path / "bad", spec) is None


def test_format_summary_lists_stages_models_and_the_index():
    from featviz.cli.cmd_demo import format_summary

    text = format_summary({
        "stages": [{"name": "models", "status": "reused", "seconds": 1.0, "note": "3 reused"},
                   {"name": "attacks", "status": "skipped", "seconds": 0.0, "note": "not available"}],
        "models": [{"name": "digits-adversarial", "mode": "joint", "adv": {"attack": "pgd", "eps": 0.1},
                    "test_accuracy": 0.97, "robust_accuracy": 0.71}],
        "reference_eps": 0.1, "seconds": 12.3, "index": "gallery/index.html"})
    lines = text.splitlines()
    assert lines[-1] == "open gallery/index.html"
    assert any(line.startswith("attacks") and "skipped" in line and "not available" in line for line in lines)
    assert any("digits-adversarial" in line and "pgd 0.1" in line and "97.0%" in line and "71.0%" in line
               for line in lines)
