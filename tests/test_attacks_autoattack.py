"""APGD, Square, the AutoAttack ensembles, masking flags, any nn.Module from the command line."""

from __future__ import annotations

import json
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from tests.attack_models import small_digits, trained_tiny
from featviz.attacks import APGD, Square, make_attack, robustness_curve
from featviz.attacks.apgd import checkpoints, dlr
from featviz.attacks.flags import masking_flags, model_flags
from featviz.devices import generator
from featviz.errors import SpecError


@pytest.fixture(scope="module")
def digits8():
    return small_digits(120)


@pytest.fixture(scope="module")
def trained(digits8):
    return trained_tiny(digits8)


# ------------------------------------------------------------------ APGD


def test_checkpoints_follow_the_paper():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 → w_j = ⌈p_j · 100⌉
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(5)[0] == 2 and all(w <= 5 for w in checkpoints(5))


def test_dlr_is_scale_invariant_and_signed():
    z = torch.tensor([[3.0, 1.0, 0.5, -1.0], [0.0, 2.0, 1.0, -1.0]])
    y = torch.tensor([0, 0])
    assert torch.allclose(dlr(z, y), dlr(7 * z, y))
    assert dlr(z, y)[0] < 0 < dlr(z, y)[1]  # negative while correct, positive once fooled
    assert torch.allclose(dlr(z, y, torch.tensor([1, 1])), dlr(3 * z, y, torch.tensor([1, 1])))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(norm=st.sampled_from(["linf", "l2"]), eps=st.floats(0.01, 0.5), seed=st.integers(0, 1000),
       which=st.sampled_from(["apgd", "apgd-t", "square"]))
def test_never_leaves_the_ball_or_the_box(trained, digits8, norm, eps, seed, which):
    x, y = digits8.x_test[:12], digits8.y_test[:12]
    if norm == "l2":
        eps *= 4
    attack = {"apgd": APGD(norm, 6), "apgd-t": APGD(norm, 4, targets=2), "square": Square(norm, 40)}[which]
    res = attack(trained, x, y, eps, gen=generator(seed))
    delta = (res.x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps * (1 + 1e-5) + 1e-6).all())
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    with torch.no_grad():
        pred = trained(res.x_adv).argmax(1)
    assert torch.equal(pred[res.success], res.pred[res.success]) and bool((pred[res.success] != y[res.success]).all())


def test_apgd_ce_matches_torchattacks(trained, digits8):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = digits8.x_test, digits8.y_test
    for eps in (0.05, 0.1):
        ours = APGD("linf", 20)(trained, x, y, eps, gen=generator(0))
        with torch.no_grad():
            acc_ours = float((trained(ours.x_adv).argmax(1) == y).float().mean())
        xa = torchattacks.APGD(trained, norm="Linf", eps=eps, steps=20, loss="ce", seed=0)(x, y)
        with torch.no_grad():
            acc_ref = float((trained(xa).argmax(1) == y).float().mean())
        assert abs(acc_ours - acc_ref) <= 0.02 + 1e-9, (eps, acc_ours, acc_ref)


def test_apgd_is_deterministic_and_uses_only_its_generator(trained, digits8):
    x, y = digits8.x_test[:16], digits8.y_test[:16]
    a = APGD("linf", 5, targets=2)(trained, x, y, 0.08, gen=generator(3))
    torch.manual_seed(123)
    b = APGD("linf", 5, targets=2)(trained, x, y, 0.08, gen=generator(3))
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)


# ------------------------------------------------------------------ Square


class Counting(nn.Module):
    """Counts how many images the wrapped model is evaluated on."""

    def __init__(self, model):
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x):
        self.images += len(x)
        return self.model(x)


def test_square_counts_queries_and_stops_per_example(trained, digits8):
    x, y = digits8.x_test[:24], digits8.y_test[:24]
    with torch.no_grad():
        keep = trained(x).argmax(1) == y
    x, y = x[keep], y[keep]
    model = Counting(trained)
    res = Square("linf", 60)(model, x, y, 0.15, gen=generator(0))
    q = res.extra["queries"]
    assert int(q.sum()) == model.images  # every evaluation is counted, nothing else
    assert bool((q >= 1).all()) and int(q.max()) <= 60
    assert bool((q[~res.success] == 60).all())  # standing examples spend the budget
    assert bool(res.success.any()) and bool((q[res.success] < 60).all())  # fooled ones stop early


def test_square_beats_a_gradient_masking_layer(trained, digits8):
    model = nn.Sequential(ZeroGrad(), trained).eval()
    x, y = digits8.x_test[:24], digits8.y_test[:24]
    white = APGD("linf", 10)(model, x, y, 0.15, gen=generator(0))
    black = Square("linf", 200)(model, x, y, 0.15, gen=generator(0))
    assert black.success.float().mean() > white.success.float().mean() + 0.2


# ------------------------------------------------------------------ ensembles


def test_ensemble_is_worst_case_and_records_components(trained, digits8):
    from featviz.attacks.ensemble import Ensemble

    x, y = digits8.x_test[:48], digits8.y_test[:48]
    small = Ensemble("aa-small", [APGD("linf", 8), APGD("linf", 8, targets=3), Square("linf", 100)])
    rep = robustness_curve(trained, x, y, small, [0.05, 0.1], seed=0, progress=False)
    comp = rep.to_dict()["curve"][1]["components"]
    assert [c["attack"] for c in comp] == ["apgd-ce", "apgd-t", "square"]
    clean_wrong = int((~rep.correct).sum())
    standing = round(rep.robust_accuracy()[1] * len(y))
    assert clean_wrong + sum(c["broken"] for c in comp) + standing == len(y)
    assert rep.to_dict()["queries"]["max"] <= 2 * 100  # Square's queries over both ε
    # the first component alone is no stronger than the ensemble
    ce = robustness_curve(trained, x, y, APGD("linf", 8), [0.05, 0.1], seed=0, progress=False)
    assert rep.robust_accuracy()[1] <= ce.robust_accuracy()[1] + 1e-9
    # the gradient-only prefix draws the same numbers: its accuracy is the full one plus Square's share
    fast = Ensemble("aa-small-fast", small.components[:2])
    rep_fast = robustness_curve(trained, x, y, fast, [0.05, 0.1], seed=0, progress=False)
    for j in range(2):
        square = rep.to_dict()["curve"][j]["components"][2]["broken"]
        assert rep_fast.robust_accuracy()[j] == pytest.approx(rep.robust_accuracy()[j] + square / len(y))


def test_autoattack_sequence_and_square_budget():
    full, fast = make_attack("autoattack"), make_attack("autoattack-fast")
    assert [a.name for a in full.components] == ["apgd-ce", "apgd-t", "square"]
    assert [a.steps for a in full.components] == [100, 100, 5000] and full.components[1].targets == 9
    assert [a.name for a in fast.components] == ["apgd-ce", "apgd-t"]


@pytest.mark.parametrize("name,kw", [("nope", {}), ("apgd-ce", {"steps": 0}), ("square", {"steps": 0}),
                                     ("autoattack", {"restarts": 2}), ("cw", {"restarts": 2})])
def test_registry_refuses(name, kw):
    with pytest.raises(SpecError):
        make_attack(name, **kw)


def test_attacks_package_does_not_import_checkpoint_or_data():
    import ast
    import pathlib

    import featviz.attacks

    for path in pathlib.Path(featviz.attacks.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                assert mod not in ("..checkpoint", "..data", "featviz.checkpoint", "featviz.data"), path
                assert not mod.startswith(("..data.", "featviz.data.")), path


# ------------------------------------------------------------------ masking flags


class _ZeroGradFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g)


class ZeroGrad(nn.Module):
    """Identity forward, zero gradient backward: textbook gradient masking."""

    def forward(self, x):
        return _ZeroGradFn.apply(x)


class AlwaysDropout(nn.Module):
    """Dropout that stays on in eval mode (randomness left in at test time)."""

    def forward(self, x):
        return nn.functional.dropout(x, 0.3, training=True)


def _names(model, x, y):
    return {f["name"] for f in model_flags(model, x, y)}


def test_each_flag_fires_on_a_crafted_model(trained, digits8):
    x, y = digits8.x_test[:32], digits8.y_test[:32]
    assert _names(trained, x, y) == set()
    assert _names(nn.Sequential(ZeroGrad(), trained), x, y) == {"vanishing input gradients"}
    assert "probability outputs" in _names(nn.Sequential(trained, nn.Softmax(1)), x, y)
    assert "random outputs" in _names(nn.Sequential(AlwaysDropout(), trained), x, y)
    masked = nn.Sequential(ZeroGrad(), trained)
    rep = robustness_curve(masked, x, y, Square_then_apgd(), [0.15], seed=0, progress=False)
    flags = {f["name"] for f in masking_flags(masked, x, y, [rep])}
    assert "black-box beats white-box" in flags
    failed = masking_flags(trained, x, y, [], [{"name": "PGD <= FGSM", "passed": False, "detail": "d"}])
    assert [f["name"] for f in failed] == ["check failed: PGD <= FGSM"]


def Square_then_apgd():
    from featviz.attacks.ensemble import Ensemble

    return Ensemble("aa-small", [APGD("linf", 10), Square("linf", 120)])


@pytest.mark.parametrize("name", ["digits-joint", "digits-layerwise", "digits-adversarial"])
def test_flags_silent_on_shipped_models(name):
    from featviz.checkpoint import load_checkpoint
    from featviz.data import load_dataset

    path = os.path.join("models", name)
    if not os.path.isdir(path):
        pytest.skip("shipped models not present")
    model = load_checkpoint(path).model.eval()
    data = load_dataset("digits")
    assert model_flags(model, data.x_test[:100], data.y_test[:100]) == []


# ------------------------------------------------------------------ any nn.Module from the command line


def test_model_option_equals_library_call(run_cli, tmp_path):
    pytest.importorskip("torchvision")
    from safetensors.torch import save_file

    from featviz.data import load_dataset

    from tests.attack_models import resnet18_digits

    model = resnet18_digits().eval()
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    r = run_cli("attack", "--model", "tests.attack_models:resnet18_digits", "--weights", weights, "--input-shape",
                "1,16,16", "--dataset", "digits", "--attack", "apgd-ce", "--steps", "3", "--eps", "0.05",
                "--n-examples", "12", "--n-show", "0", "--json", "--out", tmp_path / "o")
    assert r.code == 0, r.err
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    data = load_dataset("digits")
    x, y = data.x_test[:12], data.y_test[:12]
    lib = robustness_curve(model, x, y, make_attack("apgd-ce", steps=3), [0.05], seed=0, progress=False)
    (m,) = saved["models"]
    assert m["clean_accuracy"] == lib.clean_accuracy
    assert m["attacks"][0]["curve"][0]["robust_accuracy"] == lib.robust_accuracy()[0]
    (row,) = m["evaluations"]
    assert row == {"attack": "apgd-ce", "norm": "linf", "eps": 0.05, "clean_accuracy": lib.clean_accuracy,
                   "robust_accuracy": lib.robust_accuracy()[0], "n_examples": 12}
    assert isinstance(m["flags"], list)


R18 = ["--model", "tests.attack_models:resnet18_digits", "--random-init"]
SHAPE, DIGITS = ["--input-shape", "1,16,16"], ["--dataset", "digits"]


@pytest.mark.parametrize("args,fragment", [
    (R18 + SHAPE + DIGITS + ["--attack", "nope"], "nope"),
    (R18 + SHAPE + DIGITS + ["--attack", "square", "--steps", "0"], "steps"),
    (["--model", "no_such_module_xyz:f"] + SHAPE + DIGITS, "cannot import"),
    (["--model", "tests.attack_models:not_a_module"] + SHAPE + DIGITS, "nn.Module"),
    (R18 + ["--input-shape", "3,16,16"] + DIGITS, "inputs"),
    (R18 + SHAPE, "--dataset"),
])
def test_model_option_bad_input(run_cli, tmp_path, args, fragment):
    r = run_cli("attack", *args, "--eps", "0.05", "--n-examples", "4", "--out", tmp_path / "o")
    assert r.code == 2, r.err
    assert fragment in r.err and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ torchrun


def test_torchrun_sharded_autoattack_matches_single_process(tmp_path):
    from tests.test_distributed import TORCHRUN, _sharded_and_single, _strip

    if TORCHRUN is None:
        pytest.skip("torchrun not found next to the interpreter")
    ddp, one = _sharded_and_single(tmp_path, ["attack", "--attack", "autoattack", "--eps", "0.25", "--n-examples",
                                              "96", "--batch-size", "32", "--n-show", "0"], 2)
    a, b = (json.loads((d / "results.json").read_text()) for d in (ddp, one))
    (point,) = a["models"][0]["attacks"][0]["curve"]
    assert [c["attack"] for c in point["components"]] == ["apgd-ce", "apgd-t", "square"]
    assert a["models"][0]["evaluations"][0]["n_examples"] == 96
    assert _strip(a)["models"] == _strip(b)["models"]
