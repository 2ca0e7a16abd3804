"""One vocabulary across commands (docs/options.md): the same option means the same thing,
every study command has --quick, --dataset is checked everywhere, and error messages
never send the user from one refusal to another."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from featviz.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    out = {}
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out.update(_commands(cmd, f"{prefix}{name} "))
        else:
            out[f"{prefix}{name}"] = cmd
    return out


COMMANDS = _commands()
STUDIES = ["compare", "purify", "hierarchy run", "hierarchy images", "hierarchy alpha-sweep", "hierarchy scaling"]


def _options(name: str) -> dict[str, click.Option]:
    return {opt: p for p in COMMANDS[name].params if isinstance(p, click.Option) for opt in p.opts}


@pytest.mark.parametrize("name", STUDIES + [c for c in COMMANDS if c == "hierarchy correction"])
def test_every_study_command_has_quick(name):
    assert "--quick" in _options(name)


@pytest.mark.parametrize("name", [c for c in COMMANDS if "--dataset" in _options(c)])
def test_dataset_is_checked_before_anything_runs(run_cli, tmp_path, name):
    r = run_cli(*name.split(), "--dataset", "no-such-data", "--out", tmp_path / "o")
    assert r.code == 2 and "no-such-data" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "o").exists()


def test_the_options_table_covers_the_shared_options():
    text = (ROOT / "docs" / "options.md").read_text()
    for option in ("--epochs", "--epochs-per-stage", "--eps", "--steps", "--render-steps", "--quick", "--dataset",
                   "--data", "--model", "--model-arg", "--weights", "--random-init", "--tensorboard", "--seed",
                   "--out", "--force", "--json"):
        assert f"`{option}" in text, option
    # every option named in the table exists on some command
    known = {opt for c in COMMANDS for opt in _options(c)} | {"--help"}
    for option in set(re.findall(r"`(--[a-z][a-z0-9-]*)", text)):
        assert option in known, f"docs/options.md names {option}, which no command has"


# ------------------------------------------------------------------ messages that agree with each other


@pytest.mark.parametrize("total", range(1, 13))
def test_compare_budget_hints_lead_to_an_accepted_budget(total):
    """Following compare's hint is accepted for every mode (no 'at least 4', then 'multiple of 3')."""
    from featviz.errors import SpecError
    from featviz.studies.compare import CompareSpec

    try:
        CompareSpec(epochs_total=total).validate()
        return
    except SpecError as exc:
        hinted = re.search(r"(?:at least|use) (\d+)", exc.one_line())
        assert hinted, exc.one_line()
    CompareSpec(epochs_total=int(hinted.group(1))).validate()


@pytest.mark.parametrize("mode", ["joint", "layerwise", "layerwise+joint"])
@pytest.mark.parametrize("total", [1, 2, 3, 5, 7])
def test_train_epochs_is_the_whole_run(run_cli, tmp_path, mode, total):
    """--epochs E trains E epochs in all, split over the stages; a refusal's hint is accepted."""
    from featviz.cli.cmd_train import _stage_budget

    try:
        per_stage, stages = _stage_budget(mode, 3, "digits", total, None)
    except Exception as exc:  # noqa: BLE001 - the refusal is a FeatvizError with a hint
        hinted = int(re.search(r"at least (\d+)", str(exc)).group(1))
        per_stage, stages = _stage_budget(mode, 3, "digits", hinted, None)
        total = hinted
    assert sum(stages) == total and len(stages) == {"joint": 1, "layerwise": 3, "layerwise+joint": 4}[mode]
    assert max(stages) - min(stages) <= 1


def test_train_epochs_per_stage_keeps_the_old_meaning_and_plan_is_printed(run_cli, tmp_path):
    r = run_cli("train", "--dataset", "digits", "--image-size", "8", "--width", "2", "--depth", "2", "--mode",
                "layerwise", "--epochs-per-stage", "2", "--out", tmp_path / "a")
    assert r.code == 0, r.err
    assert "block1 2, block2 2 epochs (4 in all)" in r.err
    r = run_cli("train", "--dataset", "digits", "--image-size", "8", "--width", "2", "--depth", "2", "--mode",
                "layerwise", "--epochs", "3", "--out", tmp_path / "b")
    assert r.code == 0, r.err
    assert "block1 1, block2 2 epochs (3 in all)" in r.err
    r = run_cli("train", "--epochs", "3", "--epochs-per-stage", "1", "--out", tmp_path / "c")
    assert r.code == 2 and "exclude each other" in r.err


def test_old_spellings_still_work_and_stay_out_of_help():
    opts = _options("compare")
    assert opts["--epochs-total"].hidden and not opts["--epochs"].hidden


@pytest.mark.parametrize("text,value", [("8/255", 8 / 255), ("0.1", 0.1), ("1e-2", 0.01), (" 3/4 ", 0.75)])
def test_numbers_as_fractions(text, value):
    from featviz.numbers import parse_number

    assert parse_number(text) == pytest.approx(value)


def test_fractions_in_every_eps_list():
    from featviz.attacks.evaluate import parse_eps_sweep
    from featviz.cli._common import parse_floats
    from featviz.cli.cmd_compare import _eps

    assert _eps("0,4/255,8/255") == pytest.approx((0, 4 / 255, 8 / 255))
    assert parse_floats("1/2,1/4", "--alphas") == pytest.approx((0.5, 0.25))
    assert parse_eps_sweep("0:8/255:3") == pytest.approx([0, 4 / 255, 8 / 255])
