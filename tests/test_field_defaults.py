"""The field's defaults in `featviz attack`: autoattack-fast unless told otherwise, ε as
fractions and lists, PGD labelled an upper bound and checked against APGD, minimal ε
"not measured" rather than a sweep value, leaderboard rows; and --tensorboard event files."""

from __future__ import annotations

import csv
import json

import pytest

from tests.attack_models import small_digits, trained_tiny


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from featviz.checkpoint import make_card, save_checkpoint

    data = small_digits(24)
    model = trained_tiny(data)
    path = tmp_path_factory.mktemp("ck") / "tiny"
    save_checkpoint(path, model, make_card(model, dataset=data.info, training={"mode": "joint", "adv": None},
                                           metrics={}, name="tiny"))
    return path


def test_default_attack_is_autoattack_fast_and_eps_takes_fractions(run_cli, tiny_ckpt, tmp_path):
    r = run_cli("attack", tiny_ckpt, "--eps", "8/255", "--n-examples", "16", "--n-show", "0",
                "--out", tmp_path / "o")
    assert r.code == 0, r.err
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    (attack,) = saved["models"][0]["attacks"]
    assert attack["attack"] == "autoattack-fast" and attack["norm"] == "linf"
    assert [p["eps"] for p in attack["curve"]] == [pytest.approx(8 / 255)]
    # an ensemble is not bisected by default: its minimal ε is not a measurement, and says so
    assert attack["min_eps"]["measured"] is False and attack["min_eps"]["median"] is None
    assert "median min ε not measured" in r.out
    assert "upper bound" not in r.err


def test_eps_list_and_bisected_ensemble(run_cli, tiny_ckpt, tmp_path):
    r = run_cli("attack", tiny_ckpt, "--eps", "0.1,4/255", "--bisect-steps", "2", "--n-examples",
                "12", "--n-show", "0", "--json", "--out", tmp_path / "o")
    assert r.code == 0, r.err
    (attack,) = json.loads(r.out)["models"][0]["attacks"]
    assert [p["eps"] for p in attack["curve"]] == [pytest.approx(4 / 255), pytest.approx(0.1)]
    summary = attack["min_eps"]
    assert summary["measured"] is True
    # bisected: a per-example value strictly inside the sweep's bracket, not a sweep value
    if summary["median"] is not None:
        assert 0 < summary["median"] <= 0.1


@pytest.mark.parametrize("eps,fragment", [("1/0", "not a number"), ("0.1,0.1", "once"), ("x", "not a number"),
                                          ("inf", "finite")])
def test_bad_eps(run_cli, tiny_ckpt, tmp_path, eps, fragment):
    r = run_cli("attack", tiny_ckpt, "--eps", eps, "--out", tmp_path / "o")
    assert r.code == 2 and fragment in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_pgd_is_labelled_an_upper_bound_and_checked_against_apgd(run_cli, tiny_ckpt, tmp_path):
    from featviz.attacks.checks import pgd_vs_apgd
    from featviz.attacks.factory import make_attack
    from featviz.checkpoint import load_checkpoint
    from featviz.devices import generator

    r = run_cli("attack", tiny_ckpt, "--attack", "pgd", "--eps", "0.1", "--n-examples", "8", "--n-show", "0",
                "--out", tmp_path / "o")
    assert r.code == 0 and "upper bound" in r.err and "--check" in r.err
    # the check itself: one FGSM step is weaker than APGD by far more than 2 points on this model
    data = small_digits(48)
    model = load_checkpoint(tiny_ckpt).model
    weak = pgd_vs_apgd(model, data.x_test, data.y_test, 0.05, make_attack("fgsm"), gen=generator(0))
    assert weak.values["pgd"] - weak.values["apgd"] > 0.02 and not weak.passed and "points weaker" in weak.detail
    strong = pgd_vs_apgd(model, data.x_test, data.y_test, 0.05, make_attack("apgd-ce"), gen=generator(0))
    assert strong.values["pgd"] >= strong.values["apgd"] - 1e-9


def test_leaderboard_rows(run_cli, tiny_ckpt, tmp_path):
    r = run_cli("attack", tiny_ckpt, "--attack", "fgsm", "--attack", "pgd", "--eps", "0,0.05,0.1",
                "--n-examples", "10", "--n-show", "0", "--out", tmp_path / "o")
    assert r.code == 0, r.err
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    board = json.loads((tmp_path / "o" / "leaderboard.json").read_text())
    rows = list(csv.DictReader((tmp_path / "o" / "leaderboard.csv").open()))
    assert board["format"] == "featviz-leaderboard/1" and len(board["rows"]) == len(rows) == 4  # 2 attacks x 2 ε > 0
    expected = {(e["attack"], e["eps"]): e["robust_accuracy"] for e in results["models"][0]["evaluations"]}
    for row, jrow in zip(rows, board["rows"]):
        assert float(row["robust_accuracy"]) == pytest.approx(expected[(row["attack"], float(row["eps"]))])
        assert jrow["upper_bound_only"] is True  # fgsm and pgd: APGD usually finds more
        assert jrow["model"] == "tiny" and jrow["n_examples"] == 10


# ------------------------------------------------------------------ TensorBoard


def _events(folder):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                            reason="tensorboard is not installed (pip install featviz[tensorboard])")
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_tensorboard_train(run_cli, tmp_path):
    pytest.importorskip("torch.utils.tensorboard", reason="tensorboard is not installed")
    r = run_cli("train", "--dataset", "digits", "--image-size", "8", "--width", "3", "--depth", "2", "--epochs", "6",
                "--mode", "layerwise+joint", "--tensorboard", tmp_path / "tb", "--json", "--out", tmp_path / "ck")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    acc = _events(tmp_path / "tb")
    tags = acc.Tags()["scalars"]
    assert {"train_loss", "test_accuracy"} <= set(tags)
    stages = [s["name"] for s in summary["stages"]]
    assert all(f"{s}/test_accuracy" in tags for s in stages)
    overall = acc.Scalars("test_accuracy")
    assert [e.step for e in overall] == list(range(1, 2 * len(stages) + 1))
    last = acc.Scalars(f"{stages[-1]}/test_accuracy")[-1].value
    assert last == pytest.approx(summary["stages"][-1]["test_accuracy"], abs=1e-6)


def test_tensorboard_maximize_and_attack(run_cli, tiny_ckpt, tmp_path):
    pytest.importorskip("torch.utils.tensorboard", reason="tensorboard is not installed")
    r = run_cli("maximize", tiny_ckpt, "--neuron", "block1:0-1", "--steps", "3", "--top-k", "0",
                "--tensorboard", tmp_path / "tbm", "--json", "--out", tmp_path / "vis")
    assert r.code == 0, r.err
    metrics = json.loads(r.out)
    acc = _events(tmp_path / "tbm")
    assert set(acc.Tags()["images"]) == {f"none/{i['neuron']}" for i in metrics["images"]}
    activation = [e.value for e in acc.Scalars("none/activation")]
    assert activation == pytest.approx([i["activation"] for i in metrics["images"]], rel=1e-5)

    r = run_cli("attack", tiny_ckpt, "--attack", "fgsm", "--eps-sweep", "0:0.2:3", "--n-examples", "10",
                "--n-show", "0", "--tensorboard", tmp_path / "tba", "--json", "--out", tmp_path / "att")
    assert r.code == 0, r.err
    curve = json.loads(r.out)["models"][0]["attacks"][0]["curve"]
    acc = _events(tmp_path / "tba")
    series = acc.Scalars("tiny/fgsm/robust_accuracy")
    assert [e.value for e in series] == pytest.approx([p["robust_accuracy"] for p in curve], abs=1e-6)
    assert [e.step for e in acc.Scalars("tiny/fgsm/robust_accuracy_vs_eps")] == [0, 100, 200]


def test_tensorboard_missing_package_is_one_line(run_cli, tiny_ckpt, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    r = run_cli("attack", tiny_ckpt, "--eps", "0.1", "--tensorboard", tmp_path / "tb", "--out", tmp_path / "o")
    assert r.code == 2 and "featviz[tensorboard]" in r.err, r.err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["attack", "maximize"])
def test_tensorboard_with_an_empty_folder_name_writes_nothing_into_the_current_folder(run_cli, tiny_ckpt, tmp_path,
                                                                                        monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    extra = ["--neuron", "block1:0"] if command == "maximize" else ["--eps", "0.1"]
    r = run_cli(command, tiny_ckpt, *extra, "--tensorboard", "", "--out", tmp_path / "o")
    assert r.code == 2 and "--tensorboard needs a folder name" in r.err, r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
