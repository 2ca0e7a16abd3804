"""Attacks: cross-checks against captum and torchattacks, invariants (hypothesis),
closed-form answers on linear models, the warm-started sweep, checks, CLI, adversarial training."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from tests.attack_models import small_digits, trained_tiny
from featviz.attacks import (ATTACKS, AtDepth, CarliniWagnerL2, DeepFool, GradientAttack, Normalized, attribute,
                             fgsm, make_attack, parse_eps_sweep, pgd, robustness_curve, run_checks,
                             training_adversary)
from featviz.devices import generator, seeded
from featviz.errors import FeatvizError, SpecError


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models here are tiny: intra-op threads only add synchronization, and on a
    loaded machine they made this file several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits8():
    return small_digits(64)


@pytest.fixture(scope="module")
def trained(digits8):
    return trained_tiny(digits8)


def _two_class_linear(seed: int, n: int, bias: float, lo: float, width: float, p: float):
    """A 2-class linear model logits = W·flatten(x) + b on 4×4 inputs x ~ U[lo, lo + width],
    with its labels and the exact ℓp distance of each x to the decision boundary
    (|margin| / ‖w0 - w1‖_q, q the dual norm of p)."""
    with seeded(seed):
        w, b, x = torch.randn(2, 16), torch.randn(2) * bias, torch.rand(n, 1, 4, 4) * width + lo
    lin = nn.Linear(16, 2)
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    model = nn.Sequential(nn.Flatten(), lin)
    with torch.no_grad():
        f = model(x)
    y = f.argmax(1)
    margin = (f.gather(1, y[:, None]) - f.gather(1, (1 - y)[:, None])).squeeze(1)
    dual = 1.0 if p == math.inf else 2.0
    return model, x, y, margin / torch.linalg.vector_norm(w[0] - w[1], ord=dual)


def _textbook(geometry: str, steps: int, step: float) -> GradientAttack:
    """Last-iterate PGD from x, no early stop: what captum and torchattacks compute."""
    return GradientAttack("pgd", geometry, steps, step_size=step, random_start=False, keep_best=False,
                          early_stop=False)


# ------------------------------------------------------------------ cross-checks


def test_fgsm_matches_captum(trained, digits8):
    from captum.robust import FGSM

    x, y = digits8.x_test[:32], digits8.y_test[:32]
    ours = fgsm(keep_best=False, early_stop=False)(trained, x, y, 0.07).x_adv
    ref = FGSM(trained, loss_func=lambda out, t: F.cross_entropy(out, t, reduction="none"), lower_bound=0.0,
               upper_bound=1.0)
    ref.zero_thresh = 0.0  # captum skips |grad| <= 1e-6 by default; the textbook FGSM does not
    theirs = ref.perturb(x.clone(), epsilon=0.07, target=y)
    assert (ours - x).abs().max() > 0.05  # it did move
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_pgd_matches_captum_and_torchattacks(trained, digits8):
    import torchattacks
    from captum.robust import PGD

    x, y = digits8.x_test[:32], digits8.y_test[:32]
    eps, step, steps = 0.08, 0.01, 12
    ours = _textbook("linf", steps, step)(trained, x, y, eps).x_adv
    ta = torchattacks.PGD(trained, eps=eps, alpha=step, steps=steps, random_start=False)(x, y)
    cap = PGD(trained, loss_func=lambda out, t: F.cross_entropy(out, t, reduction="none"), lower_bound=0.0,
              upper_bound=1.0)
    cap.fgsm.zero_thresh = 0.0
    theirs = cap.perturb(x.clone(), radius=eps, step_size=step, step_num=steps, target=y)
    assert (ours - x).abs().max().item() == pytest.approx(eps, abs=1e-6)
    assert (ours - ta).abs().max().item() <= 1e-5
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_pgd_l2_matches_torchattacks(trained, digits8):
    import torchattacks

    x, y = digits8.x_test[:32], digits8.y_test[:32]
    ours = _textbook("l2", 10, 0.1)(trained, x, y, 0.5).x_adv
    ta = torchattacks.PGDL2(trained, eps=0.5, alpha=0.1, steps=10, random_start=False)(x, y)
    assert (ours - ta).abs().max().item() <= 1e-5


def test_normalized_wrapper_equals_model_that_normalizes_inside(trained, digits8):
    inner = trained  # a featviz model normalizes inside; a foreign one gets the wrapper
    mean, std = trained.input_mean.flatten().tolist(), trained.input_std.flatten().tolist()

    class Raw(nn.Module):
        def forward(self, z):  # expects normalized input: undo, then reuse the model
            return inner(z * trained.input_std + trained.input_mean)

    x = digits8.x_test[:8]
    assert torch.allclose(Normalized(Raw(), mean, std)(x), trained(x), atol=1e-5)


# ------------------------------------------------------------------ invariants (hypothesis)

SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SLOW
@given(norm=st.sampled_from(["linf", "l2"]), eps=st.floats(0.0, 0.6), steps=st.integers(1, 4),
       restarts=st.integers(1, 2), seed=st.integers(0, 2**16), targeted=st.booleans())
def test_perturbation_within_ball_and_bounds(trained, digits8, norm, eps, steps, restarts, seed, targeted):
    x, y = digits8.x_test[:16], digits8.y_test[:16]
    eps = eps * (1.0 if norm == "linf" else 4.0)
    attack = GradientAttack("pgd", norm, steps, restarts=restarts)
    target = (y + 1) % 10 if targeted else None
    res = attack(trained, x, y, eps, gen=generator(seed), target=target)
    delta = (res.x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert size.max().item() <= eps + 1e-5
    assert torch.allclose(res.norm, size, atol=1e-6)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.equal(res.pred, trained(res.x_adv).argmax(1))
    goal = (res.pred == target) if targeted else (res.pred != y)
    assert torch.equal(res.success, goal)
    if eps == 0:
        assert torch.equal(res.x_adv, x)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "pgd-l2"])
def test_zero_eps_is_the_identity(trained, digits8, name):
    x, y = digits8.x_test[:16], digits8.y_test[:16]
    res = make_attack(name, restarts=2 if name != "fgsm" else 1)(trained, x, y, 0.0, gen=generator(0))
    assert torch.equal(res.x_adv, x) and torch.equal(res.success, trained(x).argmax(1) != y)
    assert res.norm.max() == 0


@SLOW
@given(seed=st.integers(0, 2**16), name=st.sampled_from(["fgsm", "pgd", "pgd-l2", "deepfool", "cw"]))
def test_model_state_and_modes_untouched(digits8, seed, name):
    from featviz.nets import QuadraticDenseConvNet

    with seeded(seed):
        model = QuadraticDenseConvNet(1, 10, widths=(3, 4), image_size=8)
    model.train()
    model.block1.eval()  # a layerwise stage mixes frozen (eval) and learning blocks
    for p in model.block1.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {n: m.training for n, m in model.named_modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    attack = make_attack(name, steps=None if name == "fgsm" else 2)
    if name == "cw":
        attack.search_steps = 1
    attack(model, digits8.x_test[:8], digits8.y_test[:8], 0.1, gen=generator(seed))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # incl. BatchNorm statistics
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


@SLOW
@given(seed=st.integers(0, 2**16), norm=st.sampled_from(["linf", "l2"]))
def test_same_seed_same_result(trained, digits8, seed, norm):
    x, y = digits8.x_test[:16], digits8.y_test[:16]
    attack = GradientAttack("pgd", norm, 3, restarts=2)
    a = attack(trained, x, y, 0.1, gen=generator(seed))
    b = attack(trained, x, y, 0.1, gen=generator(seed))
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)


@SLOW
@given(eps=st.lists(st.floats(0.0, 0.4), min_size=1, max_size=5), seed=st.integers(0, 2**16),
       name=st.sampled_from(["fgsm", "pgd", "deepfool"]))
def test_sweep_monotone(trained, digits8, eps, seed, name):
    attack = make_attack(name, steps=None if name == "fgsm" else 3)
    scale = 4.0 if attack.norm == "l2" else 1.0
    rep = robustness_curve(trained, digits8.x_test[:24], digits8.y_test[:24], attack, [e * scale for e in eps],
                           gen=generator(seed), bisect_steps=1, batch_size=10, progress=False)
    acc = rep.robust_accuracy()
    assert rep.eps == sorted(rep.eps)
    assert all(b <= a for a, b in zip(acc, acc[1:]))
    assert all(a <= rep.clean_accuracy + 1e-9 for a in acc)
    if rep.eps[0] == 0:
        assert acc[0] == pytest.approx(rep.clean_accuracy)


# ------------------------------------------------------------------ closed forms on linear models


def test_deepfool_finds_the_linear_boundary():
    model, x, y, exact = _two_class_linear(1, 6, 1.0, 0.0, 1.0, 2)
    res = DeepFool(steps=5, overshoot=0.0, bounds=(-100.0, 100.0))(model, x, y)
    assert res.success.all()
    # one linear step lands on the boundary (+1e-4 in the numerator to cross it)
    assert torch.allclose(res.norm, exact, rtol=1e-3, atol=2e-4)


def test_fgsm_bisection_finds_linf_minimal_eps():
    model, x, y, exact = _two_class_linear(2, 20, 0.1, 0.4, 0.2, math.inf)
    rep = robustness_curve(model, x, y, fgsm(), [0.0, 0.2, 0.4], gen=generator(0), bisect_steps=12, progress=False)
    ok = exact < 0.39  # the sign step is optimal for a linear model; inside the box it never clips here
    assert ok.sum() >= 10
    assert torch.allclose(rep.min_eps[ok], exact[ok], atol=0.4 / 2**12 + 1e-6)
    assert torch.isinf(rep.min_eps[exact > 0.41]).all()


def test_cw_is_close_to_minimal_on_linear_model():
    model, x, y, exact = _two_class_linear(3, 8, 0.1, 0.3, 0.4, 2)
    res = CarliniWagnerL2(steps=200, search_steps=6, lr=0.01)(model, x, y)
    assert res.success.all()
    assert (res.norm >= exact - 1e-4).all()  # nothing beats the exact distance
    assert (res.norm <= exact * 1.15 + 0.02).all()


# ------------------------------------------------------------------ evaluation


def test_warm_sweep_is_cheaper_and_no_weaker(trained, digits8):
    x, y = digits8.x_test, digits8.y_test
    grid = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3]
    calls = {"images": 0}

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = trained

        def forward(self, z):
            calls["images"] += len(z)
            return self.inner(z)

    counted = Counting()
    rep = robustness_curve(counted, x, y, pgd(10), grid, gen=generator(0), bisect_steps=0, progress=False)
    warm = calls["images"]
    calls["images"] = 0
    independent = []
    for e in grid:
        res = pgd(10, early_stop=False)(counted, x, y, e, gen=generator(0))
        independent.append(float((res.pred == y).float().mean()))
    cold = calls["images"]
    assert warm * 3 < cold
    # Random starts differ between the two, so allow one example of noise per ε.
    assert all(a <= b + 1 / len(x) + 1e-9 for a, b in zip(rep.robust_accuracy(), independent))
    assert sum(rep.robust_accuracy()) <= sum(independent) + 1e-9


def test_targeted_attack_reaches_targets(trained, digits8):
    x, y = digits8.x_test[:32], digits8.y_test[:32]
    target = (y + 3) % 10
    res = pgd(30)(trained, x, y, 0.3, target=target, gen=generator(0))
    assert res.success.float().mean() > 0.9
    assert torch.equal(res.success, res.pred == target)


def test_restarts_keep_the_worst_case(trained, digits8):
    x, y = digits8.x_test, digits8.y_test
    one = pgd(2)(trained, x, y, 0.05, gen=generator(0)).success
    five = pgd(2, restarts=5)(trained, x, y, 0.05, gen=generator(0)).success
    assert (five | one).sum() >= one.sum() and five.sum() >= one.sum()
    assert (one & ~five).sum() == 0  # restart 0 is the same run; later ones only add


def test_attack_on_truncated_depth(trained, digits8):
    x = digits8.x_test[:4]
    assert torch.equal(AtDepth(trained, 1)(x), trained(x, depth=1))


def test_integrated_gradients_completeness(trained, digits8):
    # The network is a polynomial in x (z² and affine maps), so captum's Gauss-Legendre
    # rule integrates it exactly: attributions sum to f(x) - f(0).
    x, y = digits8.x_test[:4], digits8.y_test[:4]
    attr = attribute(trained, x, y, "ig", ig_steps=32)
    with torch.no_grad():
        gap = trained(x).gather(1, y[:, None]).squeeze(1) - trained(torch.zeros_like(x)).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(attr.flatten(1).sum(1), gap, rtol=1e-3, atol=1e-3)
    sal = attribute(trained, x, y, "saliency")
    assert sal.shape == x.shape and (sal >= 0).all()


def test_sanity_checks_report_numbers(trained, digits8):
    results = run_checks(trained, digits8.x_test[:32], digits8.y_test[:32], 0.1, steps=5, gen=generator(0))
    assert len(results) == 6
    by = {r.name: r for r in results}
    assert by["white-box beats random noise"].passed
    assert by["gradients finite and non-zero"].values["finite"] is True
    acc = by["accuracy non-increasing in eps"].values["accuracy"]
    assert len(acc) == 4 and all(0 <= a <= 1 for a in acc)


# ------------------------------------------------------------------ input validation


@pytest.mark.parametrize("eps", [-0.1, math.nan, math.inf, 5.0])
def test_bad_eps_is_a_clear_error(trained, digits8, eps):
    with pytest.raises(SpecError, match="ε"):
        pgd(2)(trained, digits8.x_test[:2], digits8.y_test[:2], eps, gen=generator(0))


@pytest.mark.parametrize("spec", ["0:0.3", "a:b:3", "0.3:0.1:4", "-1:0.3:4", "0:0.3:0", "0:0.3:1", "0:nan:3"])
def test_malformed_sweeps(spec):
    with pytest.raises(SpecError, match="eps-sweep"):
        parse_eps_sweep(spec)


def test_sweep_parsing():
    assert parse_eps_sweep("0:0.3:4") == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert parse_eps_sweep("0.1:0.1:1") == [0.1]


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"steps": -3}, {"restarts": 0}, {"step_size": -1.0},
                                    {"step_size": math.nan}, {"loss": "hinge"}])
def test_bad_settings(kwargs):
    with pytest.raises(SpecError):
        GradientAttack(**kwargs)


def test_registry_and_cli_agree():
    from featviz.cli.cmd_attack import command

    choices = next(p for p in command.params if p.name == "attacks").type.choices
    assert tuple(choices) == ATTACKS
    assert make_attack("pgd-l2").norm == "l2" and make_attack("fgsm").steps == 1
    with pytest.raises(SpecError):
        make_attack("fgsm", steps=5)


# ------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def tiny_checkpoint(trained, digits8, tmp_path_factory):
    from featviz.checkpoint import make_card, save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    card = make_card(trained, dataset=digits8.info, training={"mode": "joint", "adv": None}, metrics={},
                     name="tiny")
    save_checkpoint(path, trained, card)
    return path


def test_cli_attack_writes_contract_files(run_cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "att"
    r = run_cli("attack", tiny_checkpoint, tiny_checkpoint, "--attack", "pgd", "--attack", "deepfool",
                "--eps-sweep", "0:0.2:3", "--steps", "3", "--n-examples", "20", "--bisect-steps", "2", "--n-show",
                "2", "--check", "--json", "--out", out)
    assert r.code == 0, r.err
    printed = json.loads(r.out)
    saved = json.loads((out / "results.json").read_text())
    assert printed == saved
    assert set(saved) >= {"models", "seconds"}
    assert [m["name"] for m in saved["models"]] == ["tiny", "tiny-2"]
    for model in saved["models"]:
        assert set(model) >= {"checkpoint", "clean_accuracy", "attacks"}
        assert len(model["checks"]) == 7  # the six of Carlini et al., then PGD against APGD
        assert model["checks"][-1]["name"] == "PGD within 2 points of APGD"
        for attack in model["attacks"]:
            assert set(attack) >= {"attack", "norm", "steps", "restarts", "curve", "min_eps"}
            assert set(attack["min_eps"]) >= {"median", "mean"}
            assert [p["eps"] for p in attack["curve"]] == pytest.approx([0.0, 0.1, 0.2])
            assert attack["curve"][0]["robust_accuracy"] == pytest.approx(model["clean_accuracy"])
            assert (out / attack["files"]["examples"]).is_file()
    assert (out / "robustness.png").stat().st_size > 1000
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("model,") and len(rows) == 1 + 2 * 2 * 3


def test_cli_targeted_human_output(run_cli, tiny_checkpoint, tmp_path):
    r = run_cli("attack", tiny_checkpoint, "--attack", "fgsm", "--targeted", "--eps", "0.3", "--n-examples", "16",
                "--n-show", "0", "--out", tmp_path / "t")
    assert r.code == 0, r.err
    assert "clean accuracy" in r.out and "fgsm" in r.out
    saved = json.loads((tmp_path / "t" / "results.json").read_text())
    assert saved["targeted"] is True
    (point,) = saved["models"][0]["attacks"][0]["curve"]
    assert point["eps"] == pytest.approx(0.3) and 0 <= point["robust_accuracy"] <= saved["models"][0]["clean_accuracy"]


@pytest.mark.parametrize("args,fragment", [
    (["--eps", "-1"], "--eps"),
    (["--eps", "nan"], "--eps"),
    (["--eps", "0.1", "--eps-sweep", "0:1:3"], "exclusive"),
    (["--eps-sweep", "0:0.3"], "eps-sweep"),
    (["--steps", "0"], "steps"),
    (["--attack", "fgsm", "--steps", "4"], "fgsm"),
    (["--n-examples", "0"], "n-examples"),
])
def test_cli_bad_input_exits_2(run_cli, tiny_checkpoint, tmp_path, args, fragment):
    r = run_cli("attack", tiny_checkpoint, *args, "--out", tmp_path / "o")
    assert r.code == 2
    assert fragment in r.err and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


def test_cli_missing_checkpoint(run_cli, tmp_path):
    r = run_cli("attack", tmp_path / "nope", "--out", tmp_path / "o")
    assert r.code == 2 and "does not exist" in r.err


# ------------------------------------------------------------------ adversarial training


def test_training_adversary_respects_stage(trained, digits8):
    from featviz.train import _set_stage, plan_stages

    adversary = training_adversary({"attack": "pgd", "eps": 0.1, "steps": 2}, seed=0)
    stage = plan_stages("layerwise", trained.depth, 1)[0]  # layer1: readout 1 only
    _set_stage(trained, stage)
    modes = {n: m.training for n, m in trained.named_modules()}
    x, y = digits8.x_train[:16], digits8.y_train[:16]
    x_adv = adversary(trained, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and (x_adv - x).abs().max() > 0.05
    assert {n: m.training for n, m in trained.named_modules()} == modes
    # it attacked the depth-1 network the stage trains: same as attacking AtDepth directly
    again = training_adversary({"attack": "pgd", "eps": 0.1, "steps": 2}, seed=0)
    ref = pgd(2, keep_best=False, early_stop=False)(AtDepth(trained, 1), x, y, 0.1, gen=generator(0)).x_adv
    assert torch.equal(again(trained, x, y), ref)
    trained.eval()
    for p in trained.parameters():
        p.requires_grad_(True)


@pytest.mark.parametrize("adv", [{"attack": "cw", "eps": 0.1}, {"attack": "pgd", "eps": 0.0},
                                 {"attack": "pgd", "eps": 2.0}, {"attack": "fgsm", "eps": 0.1, "steps": 3}])
def test_bad_adversarial_training_specs(adv):
    with pytest.raises(FeatvizError):
        training_adversary(adv)


def test_cli_train_adv_options(run_cli, tmp_path):
    r = run_cli("train", "--eps", "0.1", "--out", tmp_path / "m")
    assert r.code == 2 and "--adv" in r.err
    r = run_cli("train", "--adv", "pgd", "--out", tmp_path / "m")
    assert r.code == 2 and "--eps" in r.err
    r = run_cli("train", "--adv", "pgd", "--eps", "3", "--out", tmp_path / "m")
    assert r.code == 2 and "eps" in r.err
