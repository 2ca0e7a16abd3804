"""docs/formats.md is true: every field it lists is present in a real output of a small run.

The field lists are read from the document itself (its fenced ``fields`` blocks), so a field
documented later is checked without touching this file."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "formats.md"
BLOCK = re.compile(r"^```fields (?P<info>[^\n]*)\n(?P<body>.*?)^```", re.S | re.M)


def _blocks() -> list[dict]:
    blocks = []
    for m in BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        words = m["info"].split()
        output = next(w.split("=", 1)[1] for w in words if w.startswith("output="))
        for line in m["body"].splitlines():
            if line.strip():
                path, _, text = line.strip().partition(" ")
                blocks.append({"output": output, "path": path, "text": text.strip(),
                               "pending": "pending" in words or text.strip().startswith("(pending)"),
                               "optional": text.strip().startswith("(optional")})
    return blocks


FIELDS = _blocks()


def _main(*args) -> str:
    from featviz.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            assert exc.code in (0, None), f"featviz {' '.join(map(str, args))} exited {exc.code}"
    return buf.getvalue()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Small real runs of every command whose output the document describes (a list: several runs)."""
    from dataclasses import replace

    from featviz.studies.compare import demo_spec, run_demo_compare
    from featviz.demo import run_demo
    from featviz.studies.purification import PurificationConfig
    from featviz.studies.purification import run as run_purification

    root = tmp_path_factory.mktemp("formats")
    ck, ck2 = root / "ckpt", root / "ckpt2"
    tiny = ("--dataset", "digits", "--image-size", "8", "--width", "3", "--depth", "2", "--epochs", "1")
    _main("train", *tiny, "--out", ck)
    _main("train", *tiny, "--init-from", ck, "--out", ck2)  # a second model on the same data, and init_from
    _main("maximize", ck, "--neuron", "block1:0", "--steps", "2", "--top-k", "2", "--out", root / "vis")
    _main("prior-renders", "--checkpoint", ck, "--quick", "--blocks", "block1,block2", "--units", "0-1", "--steps", "4",
          "--cache-dir", root / "cache", "--out", root / "priors")
    # fgsm, an ensemble (its parts) and Square (its queries): every optional attack field appears
    _main("attack", ck, "--attack", "fgsm", "--attack", "autoattack-fast", "--attack", "square",
          "--eps-sweep", "0:0.1:2", "--n-examples", "20", "--n-show", "1", "--out", root / "att")
    # a softmax head raises a gradient-masking flag, so the flags' fields are checked too
    _main("attack", "--model", "tests.attack_models:softmax_digits", "--random-init", "--input-shape", "1,8,8",
          "--dataset", "digits",
          "--attack", "fgsm", "--eps", "0.1", "--n-examples", "20", "--n-show", "1", "--out", root / "att-flag")
    _main("hierarchy", "run", "--preset", "quick", "--seeds", "1", "--no-sweeps", "--epochs", "3", "--d", "6",
          "--k", "2", "--depth", "2", "--width", "6", "--n-train", "200", "--threads", "1", "--out", root / "hier")
    _main("hierarchy", "alpha-sweep", "--alphas", "0.05,0.2", "--seeds", "2", "--epochs", "3", "--n-train", "200",
          "--threads", "1", "--out", root / "alpha")
    _main("hierarchy", "scaling", "--d", "4,5", "--n", "100,200", "--seeds", "2", "--steps", "10",
          "--target-error", "0.5", "--threads", "1", "--out", root / "scaling")
    _main("hierarchy", "correction", "--quick", "--alphas", "0.1,0.3", "--seeds", "2", "--width", "4,2", "--d", "5",
          "--threads", "1", "--out", root / "correction")
    # the demo's quick budgets (featviz.demo.QUICK)
    run_purification(PurificationConfig(epochs=2, width=4, adv_steps=1, render_steps=4, robust_eval_steps=1), seeds=1,
                     out=root / "purify", progress=False)
    run_demo_compare(root / "compare", spec=replace(demo_spec(0), width=4, n_examples=24, render_units=1,
                                                    render_steps=4, eps=(0.0, 0.1), label="formats test"))
    _main("hierarchy", "images", "--quick", "--seeds", "1", "--render-steps", "2", "--purification", root / "purify",
          "--out", root / "images")
    gallery = json.loads(_main("gallery", ck, ck2, "--render-steps", "0", "--attacks", root / "att",
                               "--study", root / "compare", "--study", root / "images", "--study", root / "purify",
                               "--json", "--out", root / "gal"))
    demo = run_demo(None, quick=True, models_dir=None, models_only=True, progress=False)
    read = lambda *parts: json.loads(root.joinpath(*parts).read_text())  # noqa: E731
    attack, flagged = read("att", "results.json"), read("att-flag", "results.json")
    assert attack["models"][0]["flags"] == [] and flagged["models"][0]["flags"]
    attack["models"] += flagged["models"]  # one list of model entries, each from a real run
    return {
        "checkpoint": [read("ckpt", "card.json"), read("ckpt2", "card.json")],
        "maximize": read("vis", "metrics.json"),
        "prior-renders": read("priors", "results.json"),
        "attack": attack,
        "attack-leaderboard": read("att", "leaderboard.json"),
        "hierarchy": read("hier", "results.json"),
        "alpha-sweep": read("alpha", "results.json"),
        "scaling": read("scaling", "results.json"),
        "correction": read("correction", "results.json"),
        "purify": read("purify", "results.json"),
        "compare": read("compare", "results.json"),
        "image-study": read("images", "results.json"),
        "gallery": gallery,
        "matches": read("gal", "results", "matches.json"),
        "demo": demo,
    }


def _present(obj, parts: list[str], every: bool = True) -> bool:
    """Is the path present? ``name[]`` descends into every list element, ``*`` into every
    value of an object; an empty list holds the field vacuously. With ``every=False`` one
    element or value holding it is enough (an optional field that only some entries have,
    e.g. the parts of an ensemble attack), and an empty list does not count."""
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    agree = all if every else any
    if head in ("*", "*[]"):
        values = list(obj.values()) if isinstance(obj, dict) else []
        if head == "*[]":
            if not all(isinstance(v, list) for v in values):
                return False
            values = [item for v in values for item in v]
        return bool(values) and agree(_present(v, rest, every) for v in values)
    is_list = head.endswith("[]")
    key = head[:-2] if is_list else head
    if not isinstance(obj, dict) or key not in obj:
        return False
    if is_list:
        return isinstance(obj[key], list) and agree(_present(v, rest, every) for v in obj[key])
    return _present(obj[key], rest, every)


def test_the_document_has_field_lists_for_every_output():
    outputs = {f["output"] for f in FIELDS}
    assert {"checkpoint", "maximize", "attack", "hierarchy", "gallery", "alpha-sweep", "scaling", "image-study",
            "purify", "compare", "matches", "demo"} <= outputs
    assert len(FIELDS) > 300
    assert all(re.fullmatch(r"[\w+/.\[\]*-]+", f["path"]) for f in FIELDS), [f["path"] for f in FIELDS]


@pytest.mark.parametrize("field", FIELDS, ids=[f"{f['output']}:{f['path']}" for f in FIELDS])
def test_documented_field_is_in_a_real_output(outputs, field):
    data = outputs.get(field["output"])
    if data is None:
        pytest.skip(f"no small run of {field['output']} in this version (marked pending in docs/formats.md)")
    parts = field["path"].split(".")
    runs = data if isinstance(data, list) else [data]  # a list: several real outputs of the same kind
    # somewhere (not only vacuously, through empty lists) and, unless optional, in every entry of every run
    present = (any(_present(d, parts, every=False) for d in runs)
               and (field["optional"] or all(_present(d, parts) for d in runs)))
    if not present and field["pending"]:
        pytest.skip(f"{field['path']} is documented as pending: not produced by this version yet")
    if not present and field["optional"]:
        pytest.skip(f"{field['path']} is optional ({field['text']})")
    assert present, f"docs/formats.md lists {field['output']} field {field['path']}, the real output lacks it"


def test_the_checker_notices_a_missing_field():
    assert _present({"a": [{"b": 1}, {"b": 2}]}, ["a[]", "b"])
    assert not _present({"a": [{"b": 1}, {"c": 2}]}, ["a[]", "b"])
    assert _present({"s": {"x": {"v": 1}, "y": {"v": 2}}}, ["s", "*", "v"])
    assert not _present({"s": {"x": {"v": 1}, "y": {}}}, ["s", "*", "v"])
    assert _present({"c": {"x": [{"v": 1}], "y": [{"v": 2}]}}, ["c", "*[]", "v"])
    assert not _present({"c": {"x": [{"v": 1}], "y": [{}]}}, ["c", "*[]", "v"])
    assert _present({"a": [{"b": 1}, {"c": 2}]}, ["a[]", "b"], every=False)
    assert not _present({"a": [{"c": 2}]}, ["a[]", "b"], every=False)
    assert not _present({"a": []}, ["a[]", "b"], every=False)


def test_code_points_at_the_document():
    """Docstrings cite docs/formats.md, never a document the repository lacks."""
    root = DOC.parents[1]
    offenders = [str(p.relative_to(root)) for p in [*root.joinpath("featviz").rglob("*.py"),
                                                    *root.joinpath("tests").rglob("*.py")]
                 if "CONTRACT" in p.read_text(encoding="utf-8") and p.name != "test_formats.py"]
    assert offenders == []
