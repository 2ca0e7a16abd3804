"""The image study: conv teacher, --freeze, alignment metrics, matched budgets, the
`featviz hierarchy images` command and its gallery page."""

from __future__ import annotations

import json
from pathlib import Path
import math

import pytest
import torch

from featviz.devices import generator, seeded
from featviz.errors import FeatvizError
from featviz.studies.images import (budgets, image_study_preset, linear_cka, r2_both_ways, shifted_copies,
                                      total_steps)
from featviz.nets import QuadraticDenseConvNet
from featviz.nets.conv_teacher import ConvTeacher
from featviz.train import TrainConfig, train_model

QUICK_ARGS = ["--quick", "--render-steps", "2"]


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    """One `featviz hierarchy images --quick` run (2 seeds), shared by the tests below."""
    from featviz.cli import main

    out = tmp_path_factory.mktemp("image-study") / "out"
    try:
        main(["hierarchy", "images", *QUICK_ARGS, "--out", str(out)])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out


# ---------------------------------------------------------------- --freeze
def _tiny_conv(seed: int = 0) -> QuadraticDenseConvNet:
    with seeded(seed):
        return QuadraticDenseConvNet(1, 10, [4, 8, 8], image_size=8)


def test_freeze_keeps_frozen_block_bit_identical_and_trains_the_rest(tiny_digits):
    model = _tiny_conv()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_model(model, tiny_digits, TrainConfig(mode="joint", epochs=1, batch_size=64, freeze=("block1",)),
                progress=False)
    after = model.state_dict()
    frozen = [k for k in before if k.startswith("block1.")]
    assert frozen and any("running_mean" in k for k in frozen)  # BatchNorm statistics too
    for k in frozen:
        assert torch.equal(before[k], after[k]), k
    for k in ("block2.conv.weight", "block3.conv.weight", "readouts.0.linear.weight"):
        assert not torch.equal(before[k], after[k]), k
    assert all(p.requires_grad for p in model.parameters())  # handed back unfrozen


def test_conv_heads_are_an_arch_option(tiny_digits):
    from featviz.nets import build_model

    linear, conv = _tiny_conv(), None
    with seeded(0):
        conv = QuadraticDenseConvNet(1, 10, [4, 8, 8], image_size=8, head="conv")
    assert "head" not in linear.arch and conv.arch["head"] == "conv"  # linear-head cards unchanged
    x = tiny_digits.x_test[:5]
    assert conv.eval()(x).shape == (5, 10) and conv(x, depth=1).shape == (5, 10)
    rebuilt = build_model(conv.arch)
    rebuilt.load_state_dict(conv.state_dict())
    assert torch.equal(rebuilt.eval()(x), conv(x))
    with pytest.raises(ValueError, match="head"):
        QuadraticDenseConvNet(1, 10, [4], image_size=8, head="mlp")


def test_freeze_rejects_unknown_block(tiny_digits):
    with pytest.raises(FeatvizError, match="block9"):
        train_model(_tiny_conv(), tiny_digits, TrainConfig(epochs=1, freeze=("block9",)), progress=False)


def test_train_cli_unknown_freeze_layer_exits_2(run_cli, tmp_path):
    out = tmp_path / "ckpt"
    res = run_cli("train", "--dataset", "digits", "--epochs", "1", "--freeze", "block9", "--out", out)
    assert res.code == 2 and "block9" in res.err and "Traceback" not in res.err
    assert not out.exists()


# ---------------------------------------------------------------- alignment metrics
def test_linear_cka_identity_rotation_and_scale_invariance():
    gen = generator(0)
    x = torch.randn(300, 6, generator=gen, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-10)
    y = torch.randn(300, 4, generator=gen, dtype=torch.float64)
    base = linear_cka(x, y)
    assert 0.0 <= base < 0.2  # independent features
    assert linear_cka(3.5 * x @ q, y) == pytest.approx(base, rel=1e-9)
    assert linear_cka(x, y + 2.0) == pytest.approx(base, rel=1e-9)  # centring: shifts do not matter


def test_r2_both_ways_sees_which_side_holds_more():
    gen = generator(1)
    teacher = torch.randn(400, 3, generator=gen)
    learner = torch.cat([teacher @ torch.randn(3, 3, generator=gen), 2 * torch.randn(400, 5, generator=gen)], dim=1)
    to_teacher, from_teacher = r2_both_ways(learner, teacher)
    assert to_teacher == pytest.approx(1.0, abs=1e-4)  # the learner contains the teacher
    assert from_teacher < 0.5  # but also 5 directions the teacher does not have


# ---------------------------------------------------------------- the conv teacher
def test_conv_teacher_has_an_information_gap(tiny_digits):
    x = tiny_digits.x_train
    teacher = ConvTeacher(1, 8, k=3, depth=3, alpha=0.4, seed=0).calibrate(x)
    share = teacher.contributions(tiny_digits.x_test).var(0)
    assert share[0] > share[1] > share[2] > 0
    # calibrated: per-block readouts standardized, so shares follow alpha^(2(l-1)) on the calibration images
    calib = teacher.contributions(x).var(0)
    assert (calib[1:] / calib[:-1]).tolist() == pytest.approx([0.16, 0.16], rel=1e-3)
    y = teacher.label(x)
    assert y.shape == (len(x),) and float(y.std()) == pytest.approx(1.0, rel=1e-3)
    assert teacher(x[:5]).shape == (5, 1)
    feats = teacher.features(x[:5])
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 8, 8), (3, 4, 4), (3, 2, 2)]
    again = ConvTeacher(1, 8, k=3, depth=3, alpha=0.4, seed=0).calibrate(x)
    assert torch.equal(again.label(x), y)  # same seed and images -> same teacher, bit for bit


def test_shifted_copies_are_translations(tiny_digits):
    x = tiny_digits.x_train[:10]
    out = shifted_copies(x, 2, 1, generator(0))
    assert out.shape == (20, *x.shape[1:])
    assert torch.equal(shifted_copies(x, 0, 1, generator(0)), x[:0])
    # every copy is one of the 9 shifts of its original
    for i in range(20):
        src = torch.nn.functional.pad(x[i % 10], (1, 1, 1, 1))
        assert any(torch.equal(out[i], src[:, dy:dy + 8, dx:dx + 8]) for dy in range(3) for dx in range(3))


# ---------------------------------------------------------------- budgets and configuration
@pytest.mark.parametrize("stage_epochs, depth", [(3, 3), (4, 3), (6, 3), (9, 3), (2, 2)])
def test_matched_budgets_take_equal_total_steps(stage_epochs, depth):
    plan = budgets(stage_epochs, depth)
    steps = {name: total_steps(epochs, 1000, 64) for name, epochs in plan.items()}
    assert len(set(steps.values())) == 1
    assert len(plan["layerwise"]) == depth and len(plan["layerwise+joint"]) == depth + 1


def test_config_refuses_bad_input():
    with pytest.raises(FeatvizError, match="seeds"):
        image_study_preset("quick", seeds=())
    with pytest.raises(FeatvizError, match=">= 1"):
        image_study_preset("quick", stage_epochs=0)
    with pytest.raises(FeatvizError, match="block7"):
        image_study_preset("quick", freeze=("block7",))


@pytest.mark.parametrize("args, word", [(["--seeds", "0"], "--seeds"), (["--freeze", "block9"], "block9"),
                                        (["--epochs", "0"], ">= 1"), (["--alpha", "1.5"], "alpha")])
def test_cli_bad_input_exits_2_and_writes_nothing(run_cli, tmp_path, args, word):
    out = tmp_path / "study"
    res = run_cli("hierarchy", "images", "--quick", *args, "--out", out)
    assert res.code == 2 and word in res.err and "Traceback" not in res.err
    assert not out.exists()


# ---------------------------------------------------------------- the quick study, end to end
def test_quick_study_writes_results_with_the_contract_fields(quick_study):
    code, out = quick_study
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    teacher = res["teacher"]
    assert len(res["config"]["seeds"]) == 2
    for learner in ("joint", "layerwise", "layerwise+joint"):
        align = teacher["alignment"][learner]
        for metric in ("r2_to_teacher", "r2_from_teacher", "cka"):
            assert len(align[metric]) == 3 and len(align[f"{metric}_std"]) == 3
            assert all(math.isfinite(v) for v in align[metric])
        assert all(0.0 <= v <= 1.0 + 1e-9 for v in align["cka"])
        assert len(align["per_seed"]) == 2
        summary = teacher["summary"][learner]
        assert summary["rel_test_mse"] > 0 and len(summary["rel_test_mse_per_seed"]) == 2
    steps = {teacher["summary"][n]["total_steps"] for n in ("joint", "layerwise", "layerwise+joint")}
    assert len(steps) == 1  # matched budgets
    ratio = teacher["ratio"]["layerwise/joint"]  # a ratio of means, with a paired interval
    layerwise, joint = (teacher["summary"][n]["rel_test_mse_per_seed"] for n in ("layerwise", "joint"))
    assert ratio["value"] == pytest.approx(sum(layerwise) / sum(joint)) and ratio["low"] <= ratio["value"] <= ratio["high"]
    assert res["format"] == "featviz-image-study/1" and res["primary"]["value"] == ratio["value"]
    assert set(teacher["correction"]["cka"]) == {"block1", "block2", "block3"}
    for task in ("classification", "teacher"):
        entry = res["frozen_vs_unfrozen"][task]
        diff = [u - f for u, f in zip(entry["unfrozen"]["per_seed"], entry["frozen"]["per_seed"])]
        assert entry["difference"]["per_seed"] == pytest.approx(diff)
        # block1 was frozen in the joint stage: it did not move at all
        assert entry["cka_before_after_frozen"]["mean"][0] == pytest.approx(1.0, abs=1e-9)
        assert entry["total_steps"]["joint"] == entry["total_steps"]["unfrozen"] == entry["total_steps"]["frozen"]
    assert res["frozen_vs_unfrozen"]["classification"]["metric"] == "test_accuracy"
    for task in ("classification", "teacher"):  # layerwise with conv heads, beside linear heads
        heads = res["frozen_vs_unfrozen"][task]["layerwise_heads"]
        assert len(heads["conv"]["per_seed"]) == 2 and heads["linear"] == res["frozen_vs_unfrozen"][task]["before"]
    assert {f for f in res["files"]} >= {"results.json", "teacher_error.png", "teacher_alignment.png",
                                         "frozen_vs_unfrozen.png"}
    units = res["units"]
    assert len(units) == 3 * 4  # every teacher unit of the 3 blocks
    for u in units:
        assert set(u["files"]) == {"teacher", "layerwise", "joint"}
        assert all((out / f).is_file() for f in u["files"].values())


def test_quick_study_page(quick_study, tmp_path):
    from featviz.report.images_page import write_image_study_page
    from featviz.report.site import Site

    _, out = quick_study
    site = Site(tmp_path / "site", "featviz")
    info = write_image_study_page(site, out)
    html = (tmp_path / "site" / info["page"]).read_text()
    res = json.loads((out / "results.json").read_text())
    assert info["headline"]["ratio"]["value"] == pytest.approx(res["teacher"]["ratio"]["layerwise/joint"]["value"])
    assert html.count("<img") == 12 * 3 + 3  # teacher + 2 learners per unit, 3 figures
    assert "Frozen vs unfrozen" in html and "block1:3" in html and "conv heads" in html
    for img in (tmp_path / "site" / "img" / "image-study").iterdir():
        assert img.stat().st_size > 0


def test_page_refuses_a_folder_without_results(tmp_path):
    from featviz.report.images_page import write_image_study_page
    from featviz.report.site import Site

    with pytest.raises(FeatvizError, match="results.json"):
        write_image_study_page(Site(tmp_path / "site", "featviz"), tmp_path)


def test_quick_json_output_is_numbers(run_cli, tmp_path):
    res = run_cli("hierarchy", "images", "--quick", "--seeds", "1", "--render-steps", "0", "--json",
                  "--out", tmp_path / "s")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    saved = json.loads((tmp_path / "s" / "results.json").read_text())
    assert out["ratio"] == saved["teacher"]["ratio"]["layerwise/joint"]
    assert out["frozen_vs_unfrozen"]["classification"]["difference"]["std"] == 0.0  # one seed
    assert saved["units"] and all("files" not in u for u in saved["units"])  # no pictures asked for


def test_purification_section_comes_from_a_purify_folder(run_cli, tmp_path):
    shipped = Path(__file__).resolve().parents[1] / "studies" / "purification"
    res = run_cli("hierarchy", "images", "--quick", "--seeds", "1", "--render-steps", "0",
                  "--purification", tmp_path / "nothing", "--out", tmp_path / "bad")
    assert res.code == 2 and "purify" in res.err and not (tmp_path / "bad").exists()
    res = run_cli("hierarchy", "images", "--quick", "--seeds", "1", "--render-steps", "0",
                  "--purification", shipped, "--out", tmp_path / "s")
    assert res.code == 0, res.err
    saved = json.loads((tmp_path / "s" / "results.json").read_text())
    purify = json.loads((shipped / "results.json").read_text())
    assert saved["purification"] == purify["purification"]
    assert saved["purification_source"]["seeds"] == [s["seed"] for s in purify["per_seed"]]
