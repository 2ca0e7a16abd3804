"""Property-based fuzz (hypothesis) over every command's options and over the structured files
featviz reads (results.json of every study and of attack, metrics.json, card.json, IDX headers,
--data .npz archives). The commands include hierarchy correction, prior-renders, maximize's data
priors (sphere, pca, generator) and judge, and the own-model options (--model FILE.py:FACTORY or
MODULE:FACTORY, --model-arg, --weights, --random-init, --data, --tensorboard); lines that would
train or render for long end in a validation failure, the rest are the smallest real runs.

Whatever the mix, featviz ends with exit 0 or 2 (a reader returns or raises FeatvizError), never
a traceback or an internal error; nothing outside the scratch folder changes; a failed command
leaves nothing in or beside its --out (no temporary area, lock or probe). Command lines run
in-process through the CLI entry point; structured files go through the CLI where it is cheap
and through the readers the CLI calls otherwise. INVOCATIONS counts them all: the last test
asserts at least 1,000 per run and prints the count per class."""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

STUDIES = Path(__file__).resolve().parents[1] / "studies"
INVOCATIONS: collections.Counter = collections.Counter()
EXITS: collections.Counter = collections.Counter()
_ids = itertools.count()
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


def _tree(root: Path, skip: str = "scratch") -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] == skip:
            continue
        st_ = p.lstat()
        out[str(rel)] = (st_.st_mode, st_.st_size, st_.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from featviz.cli import main

    root = tmp_path_factory.mktemp("fuzzsafety")
    for args in (["train", "--dataset", "digits", "--image-size", "8", "--width", "2", "--depth", "1", "--epochs",
                  "1", "--out", root / "ck"],
                 ["attack", root / "ck", "--attack", "fgsm", "--eps", "0.1", "--n-examples", "4", "--n-show", "1",
                  "--out", root / "att"]):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            assert exc.code in (0, None)
    (root / "afile").write_text("a file")
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("mine")
    (root / "lookalike").mkdir()
    (root / "lookalike" / "index.html").write_text("Made by featviz")
    (root / "empty").mkdir()
    (root / "own.py").write_text(
        "import sys\nfrom torch import nn\n"
        "def tiny(width=4):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, int(width)), nn.Linear(int(width), 10))\n"
        "def boom():\n    raise RuntimeError('boom')\n"
        "def leave():\n    sys.exit(3)\n"
        "def notmodel():\n    return 42\n"
        "NOT_CALLABLE = 1\n")
    _own_files(root)
    (root / "scratch").mkdir()
    return root


def _own_files(root: Path) -> None:
    """Weights of own.py:tiny (good, another shape, damaged) and --data files (good and broken)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Linear(4, 10))
    torch.save(net.state_dict(), root / "tiny.pt")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(root / "tiny.safetensors"))
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.Linear(5, 10))
    torch.save(other.state_dict(), root / "other.pt")
    (root / "garbage.pt").write_bytes(b"PK\x03\x04 not a zip at all")
    (root / "empty.safetensors").write_bytes(b"")
    header = b'{"0.weight": {"dtype": "F32", "shape": [1000000, 64], "data_offsets": [0, 256000000]}}'
    (root / "huge.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    rng = np.random.default_rng(0)
    np.savez(root / "good.npz", x=rng.integers(0, 256, (8, 1, 8, 8), dtype=np.uint8), y=np.arange(8) % 10)
    np.savez(root / "nolabels.npz", x=rng.random((8, 8, 8, 1)).astype(np.float32))
    np.savez(root / "badlabels.npz", x=rng.random((8, 1, 8, 8)).astype(np.float32), y=np.arange(8) + 20)
    np.savez(root / "nan.npz", x=np.full((4, 1, 8, 8), np.nan, np.float32), y=np.zeros(4, np.int64))
    np.savez(root / "rgb.npz", x=rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8), y=np.zeros(4, np.int64))
    (root / "notnpz.npz").write_text("no zip here")


def _check_clean(world: Path, before: dict, out: str | None, fresh: bool, code: int) -> None:
    """Nothing outside scratch/ changed; nothing hidden left in scratch/; a failed fresh --out absent."""
    scratch = world / "scratch"
    assert _tree(world) == before, "a file outside the scratch folder changed"
    left = [p.name for p in scratch.iterdir() if p.name.startswith(".")]
    assert left == [], f"left behind: {left}"
    if out is not None and fresh and code != 0:
        assert not os.path.lexists(out), f"a failed run left {out}"
    for p in scratch.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _run(run_cli, argv: list[str], what: str) -> tuple[int, str]:
    res = run_cli(*argv)
    INVOCATIONS[what] += 1
    EXITS[res.code] += 1
    assert res.code in (0, 2), f"featviz {argv} -> exit {res.code}: {res.err[-600:]}"
    assert "Traceback" not in res.err and "internal error" not in res.err, res.err[-600:]
    if res.code == 2:
        lines = [l[l.index("featviz:"):] for l in res.err.replace("\r", "\n").splitlines() if "featviz:" in l]
        assert len(lines) == 1 and lines[0].startswith("featviz: error:"), res.err[-600:]
    return res.code, res.err


# ---------------------------------------------------------------- command lines

NUMS = st.sampled_from(["-1", "0", "1", "2", "nan", "inf", "-inf", "1e308", "1e11", "10000000000", "abc", "", "3.5",
                        "0x10", "1,1", "0.1,0.1", "4,inf", "100000", "1e-300", " "])
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)
BAD = st.sampled_from([["--device", "tpu"], ["--device", "cuda:9"], ["--seed", "x"], ["--bogus"], ["--seeds", "0"],
                       ["--seeds", str(10**9)], ["--width", str(10**7)], ["--workers", "0"]])


def _paths(world: Path):
    return st.sampled_from([str(world / n) for n in ("ck", "att", "afile", "mine", "lookalike", "empty", "missing")]
                           + ["/proc/self", "", "-", "/dev/null", str(world / "ck" / "..")])


def _outs(world: Path):
    fresh = st.builds(lambda: (str(world / "scratch" / f"o{next(_ids)}"), True))
    return st.one_of(fresh, fresh, fresh, st.sampled_from([
        (str(world / "afile"), False), (str(world / "mine"), False), (str(world / "lookalike"), False),
        (str(world / "ck"), False), (str(world), False), ("/proc/featviz-fuzz", False),
        (str(world / "scratch" / ("n" * 300)), True), (str(world / "afile" / "x"), False)]))


MODELS = ["own.py:tiny", "own.py:boom", "own.py:leave", "own.py:notmodel", "own.py:NOT_CALLABLE", "own.py:nope",
          "own.py", "own.py:", ":tiny", "own.py:1bad", "nosuch/file.py:f", "torch.nn:Identity", "torch.nn:Flatten",
          "featviz_no_such_pkg.mod:f", "builtins:dict", "torch.nn:Linear", "afile:f"]
MODEL_ARGS = st.sampled_from(["width=4", "width=2", "width=abc", "width=0", "width=-1", "width=nan", "=1", "noequals",
                              "width=[1, 2]", "width=None", "bogus=1", "width=1e3", "width=__import__('os')", ""])
WEIGHTS = ["tiny.pt", "tiny.safetensors", "other.pt", "garbage.pt", "empty.safetensors", "huge.safetensors",
           "missing.pt", "afile", "mine", "good.npz"]
DATA = ["good.npz", "nolabels.npz", "badlabels.npz", "nan.npz", "rgb.npz", "notnpz.npz", "missing.npz", "mine", "empty",
        "afile", "ck"]


def _own_model(world: Path, dataset: tuple = ("--dataset", "digits")):
    """The own-model and own-data options: --model (file and module forms), --model-arg, --weights,
    --random-init, --input-shape, --mean/--std, --data (else ``dataset``)."""
    at = lambda names: st.sampled_from([n if ":" in n and not n.startswith("own") and not n.startswith("afile")  # noqa: E731
                                        and not n.startswith("nosuch") and not n.startswith(":")
                                        else str(world / n) for n in names])
    flat = lambda parts: [x for p in parts for x in p]  # noqa: E731
    plausible = st.builds(  # a run that can succeed, so the success path is fuzzed too
        lambda w, d, shape: ["--model", f"{world / 'own.py'}:tiny", *w, *(["--data", str(world / d)] if d else dataset),
                             *shape],
        st.sampled_from([["--weights", str(world / "tiny.pt")], ["--weights", str(world / "tiny.safetensors")],
                         ["--random-init"], ["--model-arg", "width=5", "--weights", str(world / "tiny.pt")]]),
        st.sampled_from(["good.npz", None, "nolabels.npz", "badlabels.npz", "rgb.npz"] if dataset else ["good.npz"]),
        st.sampled_from([["--input-shape", "1,8,8"], [], ["--input-shape", "1,8,8", "--mean", "0.5", "--std", "0.25"]]))
    return plausible | st.builds(
        lambda m, margs, w, ri, d, extra, dataset=list(dataset): ["--model", m, *flat(["--model-arg", a] for a in margs),
                                           *(["--weights", w] if w else []), *(["--random-init"] if ri else []),
                                           *(["--data", d] if d else dataset), *flat(extra)],
        at(MODELS), st.lists(MODEL_ARGS, max_size=2, unique_by=lambda a: a.partition("=")[0]), st.one_of(st.none(), at(WEIGHTS)), st.booleans(),
        st.one_of(st.none(), at(DATA), at(DATA)),
        st.lists(st.tuples(st.sampled_from(["--input-shape", "--mean", "--std"]),
                           st.sampled_from(["1,8,8", "3,32,32", "8,8", "1,8,8,8", "0,8,8", "1,100000,100000", "0.5",
                                            "nan", "0", "1,1", "abc", ""])).map(list), max_size=2))


def _tensorboard(world: Path):
    """--tensorboard: a fresh folder in scratch/, or a path that cannot be one."""
    fresh = st.builds(lambda: ["--tensorboard", str(world / "scratch" / f"tb{next(_ids)}")])
    return st.one_of(st.just([]), fresh, st.sampled_from([["--tensorboard", str(world / "afile")],
                                                          ["--tensorboard", str(world / "afile" / "x")],
                                                          ["--tensorboard", "/proc/featviz-tb"],
                                                          ["--tensorboard", ""]]))


def _opts(names, values=NUMS, max_size=3):
    return st.lists(st.tuples(st.sampled_from(names), values).map(list), max_size=max_size)


def _commands(world: Path):
    path = _paths(world)
    flat = lambda parts: [x for p in parts for x in p]  # noqa: E731
    return st.one_of(
        st.builds(lambda o, b: ["train", "--dataset", "synthetic", *flat(o), *b], _opts(
            ["--epochs", "--width", "--depth", "--lr", "--batch-size", "--n-train", "--d", "--k", "--alpha",
             "--teacher-depth"]), BAD),
        st.builds(lambda p, o, b: ["train", "--dataset", "mnist", "--data-root", p, *flat(o), *b], path,
                  _opts(["--epochs", "--image-size"]), st.one_of(BAD, st.just(["--epochs", "0"]))),
        st.builds(lambda p, b: ["info", p, *b], path, st.one_of(st.just([]), st.just(["--json"]), BAD)),
        st.builds(lambda p, o, b: ["maximize", p, "--neuron", "block1:0", *flat(o), *b], path, st.lists(st.one_of(
            st.tuples(st.sampled_from(["--steps", "--lr", "--top-k", "--upscale", "--max-batch"]), NUMS).map(list),
            st.tuples(st.sampled_from(["--mean", "--std"]), NUMS).map(list),
            st.tuples(st.just("--reg"), TEXT).map(list)), max_size=3), BAD),
        st.builds(lambda p, o, b: ["attack", p, *flat(o), *b], path, st.lists(st.one_of(
            st.tuples(st.sampled_from(["--eps", "--steps", "--restarts", "--n-examples", "--batch-size",
                                       "--bisect-steps", "--n-show"]), NUMS).map(list),
            st.tuples(st.just("--attack"), st.sampled_from(["fgsm", "laser", "pgd"])).map(list),
            st.tuples(st.just("--eps-sweep"), st.sampled_from(["0:1:0", "1:0:3", "0:0.3:100000", "a:b:c"])).map(list)),
            max_size=3), BAD),
        st.builds(lambda p, o, b: ["gallery", p, "--render-steps", "0", *flat(o), *b], path,
                  st.lists(st.tuples(st.sampled_from(["--attacks", "--robust", "--hierarchy", "--study", "--vis"]),
                                     path).map(list), max_size=2),
                  st.one_of(BAD, st.just(["--reference-eps", "-1"]), st.just(["--study", str(world / "mine")]))),
        st.builds(lambda o, b: ["compare", *flat(o), *b], _opts(
            ["--seeds", "--epochs-total", "--width", "--image-size", "--n-examples", "--render-units", "--workers",
             "--adv-eps"]) .map(lambda x: x) | st.lists(st.tuples(st.sampled_from(["--eps", "--modes"]), st.sampled_from(
                ["0.1,0.1", "joint,joint", "nan", "", "2", "adv,adv", "0,0.1"])).map(list), max_size=2), BAD),
        st.builds(lambda o, b: ["hierarchy", "run", "--preset", "quick", *flat(o), *b], _opts(
            ["--d", "--k", "--depth", "--alpha", "--width", "--n-train", "--seeds", "--epochs", "--lr-grid"]), BAD),
        st.builds(lambda o, b: ["hierarchy", "alpha-sweep", *flat(o), *b], _opts(
            ["--alphas", "--seeds", "--width", "--epochs", "--n-train"]), BAD),
        st.builds(lambda o, b: ["hierarchy", "scaling", *flat(o), *b], _opts(
            ["--d", "--n", "--seeds", "--steps", "--target-error"]), BAD),
        st.builds(lambda o, b: ["hierarchy", "images", "--quick", *flat(o), *b], _opts(
            ["--seeds", "--max-train", "--alpha", "--render-steps"]), BAD),
        st.builds(lambda o, b: ["purify", "--quick", *flat(o), *b], _opts(["--seeds", "--epochs", "--eps"]), BAD),
        st.builds(lambda p, b: ["purify", "--combine", p, *b], path, st.one_of(BAD, st.just([]))),
        st.builds(lambda p, b: ["demo", "--quick", "--models", p, *b], path, BAD),
    )


# Each of these but the last ends in a validation failure (the last option on the line wins), so none
# trains or renders; the last is the smallest real run (about two seconds).
CORRECTION_FAIL = st.sampled_from([["--threads", "0"], ["--threads", str(10**6)], ["--alphas", "nan"],
                                   ["--alphas", "0.1,0.1"], ["--alphas", "-1"], ["--alphas", ""], ["--seeds", "0"],
                                   ["--width", "0"], ["--width", "16,16"], ["--width", "abc"], ["--width", str(10**7)],
                                   ["--d", "1"], ["--d", "3", "--k", "2"], ["--k", "0"], ["--device", "tpu"],
                                   ["--seeds", str(10**9)], ["--alphas", "1e308"],
                                   ["--seeds", "1", "--alphas", "0.1,0.2", "--width", "2", "--d", "4", "--k", "1"]])
PRIOR_FAIL = st.sampled_from([["--steps", "0"], ["--units", "9-1"], ["--units", "abc"], ["--units", "0-100000"],
                              ["--blocks", "nope"], ["--blocks", ""], ["--blocks", "block2,block2"],
                              ["--device", "cuda:9"], ["--seed", "x"], ["--steps", str(10**9)]])
REGS = st.sampled_from(["sphere", "pca", "generator", "sphere:2", "pca:0.5", "generator:0.1", "sphere:nan", "pca:-1",
                        "generator:abc", "sphere+pca", "generator+sphere", "pca:inf", "sphere:", "standard+generator"])


def _new_commands(world: Path):
    """Commands and options that landed after the first fuzz: hierarchy correction, prior-renders, the data
    priors and judge of maximize, and the own-model / own-data / TensorBoard options."""
    path = _paths(world)
    flat = lambda parts: [x for p in parts for x in p]  # noqa: E731
    neuron = st.sampled_from(["block1:0", "logits:0", "logits:99", "block9:0", "block1:*", "0.weight:0", "1:0", "2:3"])
    return st.one_of(
        st.builds(lambda o, f: ["hierarchy", "correction", "--quick", *flat(o), *f], _opts(
            ["--alphas", "--seeds", "--width", "--threads", "--d", "--k"]), CORRECTION_FAIL),
        st.builds(lambda p, o, c, f: ["prior-renders", "--checkpoint", p, "--quick", *flat(o), *c, *f], path,
                  _opts(["--steps", "--units", "--blocks"], st.sampled_from(["1", "0-1", "*", "block2", "block1",
                                                                              "logits", "-1", "abc", ""]), 2),
                  st.one_of(st.just([]), st.just(["--cache-dir", str(world / "afile")])), PRIOR_FAIL),
        st.builds(lambda p, n, regs, j, s_, c: ["maximize", p, "--neuron", n, *flat(["--reg", r] for r in regs), *j,
                                                "--steps", s_, "--top-k", "0", "--no-converge-check", *c],
                  st.sampled_from([str(world / "ck"), str(world / "ck"), str(world / "att"), str(world / "missing")]),
                  neuron, st.lists(REGS, min_size=1, max_size=2),
                  st.sampled_from([[], ["--judge"], ["--no-judge"]]), st.sampled_from(["1", "0", "-1", "abc"]),
                  st.sampled_from([[], [], ["--cache-dir", str(world / "afile")], ["--compare-regs"]])),
        st.builds(lambda m, n, s_, tb: ["maximize", "--neuron", n, *m, "--steps", s_, "--top-k", "0",
                                        "--no-converge-check", "--no-judge", *tb],
                  _own_model(world), st.sampled_from(["logits:0", "2:3", "1:0", "logits:*", "block1:0", "logits:99"]),
                  st.sampled_from(["1", "0", "-1"]), _tensorboard(world)),
        st.builds(lambda m, o, tb: ["attack", *m, "--attack", "fgsm", *flat(o), *tb], _own_model(world),
                  _opts(["--eps", "--n-examples"], st.sampled_from(["0.1", "0", "-1", "nan", "4", "100000", "abc"]), 2),
                  _tensorboard(world)),
        st.builds(lambda m, f: ["gallery", *m, "--render-steps", "0", *f], _own_model(world, ()),
                  st.sampled_from([["--reference-eps", "-1"], ["--device", "tpu"], ["--seed", "x"], ["--bogus"],
                                   ["--render-steps", "-1"], ["--attacks", str(world / "mine")]])),
    )


@pytest.fixture
def own_cache(tmp_path_factory, monkeypatch):
    """The generator prior and the judge are cached in a folder of this run, never in the user's cache."""
    cache = tmp_path_factory.getbasetemp() / "fuzzcache"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("FEATVIZ_CACHE", str(cache))
    return cache


@pytest.mark.parametrize("which,examples", [("old", 650), ("new", 400)])
def test_command_lines(world, run_cli, own_cache, which, examples):
    before = _tree(world)
    strategy = _commands(world) if which == "old" else _new_commands(world)

    @settings(max_examples=examples, **SETTINGS)
    @given(strategy, _outs(world), st.booleans())
    def check(argv, out_pair, force):
        out, fresh = out_pair
        argv = argv + ["--out", out] + (["--force"] if force else [])
        if argv[0] == "info":
            argv, out = argv[:argv.index("--out")], None
        what = f"cli:{argv[0]}{':' + argv[1] if argv[0] == 'hierarchy' else ''}"
        what += ":own-model" if "--model" in argv else ":data-prior" if argv[0] == "maximize" and which == "new" else ""
        code, _ = _run(lambda *a: run_cli(*a), argv, what)
        _check_clean(world, before, out, fresh, code)

    check()


# ---------------------------------------------------------------- structured inputs

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**25, 10**25), st.floats(allow_nan=False),
                    st.sampled_from(["", "x", "../secret.png", "/etc/passwd", "NaN", "results.json", "a/../../b.png"]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                    max_leaves=20)


def _mutate(doc, data):
    """Replace, delete or retype one value somewhere in the JSON document ``doc``."""
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (i,))

    walk(doc, ())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        value = data.draw(JSON)
        if not path:
            return value
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            if data.draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass
    return doc


def _raw_text(data, doc) -> str:
    """The document as JSON text, sometimes damaged: NaN literals, deep nesting, huge ints, cut off."""
    text = json.dumps(doc)
    kind = data.draw(st.sampled_from(["plain"] * 6 + ["nan", "deep", "bigint", "cut", "bom"]))
    if kind == "nan":
        text = text.replace("0.", "NaN, 0.", 1) if "0." in text else '{"a": NaN}'
    elif kind == "deep":
        text = '{"models": ' + "[" * data.draw(st.integers(20, 3000)) + "]" * 3000 + "}"
    elif kind == "bigint":
        text = '{"models": [], "seconds": ' + "9" * data.draw(st.integers(18, 6000)) + "}"
    elif kind == "cut":
        text = text[: data.draw(st.integers(0, max(0, len(text) - 1)))]
    elif kind == "bom":
        text = "\ufeff" + text
    return text


def _read_any(kind: str, folder: Path):
    """What the gallery does with the folder: read it and, for a study, write its page."""
    from featviz.report.compare_pages import page_context, read_compare
    from featviz.report.results import hierarchy_rows, read_attacks, read_hierarchy
    from featviz.report.site import Site
    from featviz.report.studies import read_studies, write_study_pages

    if kind == "attack":
        read_attacks(folder)
        return
    if kind == "hierarchy":
        hierarchy_rows(read_hierarchy(folder))
    elif kind == "compare":
        page_context(read_compare(folder))
    write_study_pages(Site(folder.with_name(folder.name + "-site"), "t"), read_studies([(folder, "x")]))


SOURCES = {"attack": ("att", "results.json"), "compare": (STUDIES / "compare-digits", "results.json"),
           "hierarchy": (STUDIES / "hierarchy-default", "results.json"),
           "image-study": (STUDIES / "image-study", "results.json"),
           "alpha-sweep": (STUDIES / "hierarchy-alpha" / "step2", "results.json"),
           "scaling": (STUDIES / "hierarchy-scaling", "results.json"),
           "purification": (STUDIES / "purification", "results.json")}


def test_result_files(world):
    """Mutated results.json of every reader: read (as the gallery reads it) or refused with FeatvizError."""
    from featviz.errors import FeatvizError

    before = _tree(world)
    originals = {k: json.loads(((world / src) if isinstance(src, str) else src).joinpath(name).read_text())
                 for k, (src, name) in SOURCES.items()}

    @settings(max_examples=360, **SETTINGS)
    @given(st.sampled_from(sorted(SOURCES)), st.data())
    def check(kind, data):
        src, name = SOURCES[kind]
        src = world / src if isinstance(src, str) else src
        folder = world / "scratch" / f"r{next(_ids)}"
        shutil.copytree(src, folder, ignore=shutil.ignore_patterns("*.svg", "units", "README.md"))
        doc = _mutate(json.loads(json.dumps(originals[kind])), data)
        (folder / name).write_text(_raw_text(data, doc))
        INVOCATIONS[f"results:{kind}"] += 1
        try:
            _read_any(kind, folder)
            EXITS[0] += 1
        except FeatvizError:
            EXITS[2] += 1
        shutil.rmtree(folder)
        shutil.rmtree(folder.with_name(folder.name + "-site"), ignore_errors=True)
        _check_clean(world, before, None, False, 0)

    check()


def _mutated_copy(world: Path, src: str, name: str, data) -> Path:
    """A copy of ``world/src`` in scratch/ whose JSON file ``name`` is mutated (see :func:`_mutate`)."""
    folder = world / "scratch" / f"{src}{next(_ids)}"
    shutil.copytree(world / src, folder)
    original = json.loads((world / src / name).read_text())
    (folder / name).write_text(_raw_text(data, _mutate(original, data)))
    return folder


@pytest.mark.parametrize("what,src,name,examples", [("gallery-results", "att", "results.json", 60),
                                                     ("info-card", "ck", "card.json", 120)])
def test_mutated_files_through_the_cli(world, run_cli, what, src, name, examples):
    """Mutated attack results through `featviz gallery --attacks`, mutated cards beside real weights
    through `featviz info`: read, or refused with exit 2."""
    before = _tree(world)

    @settings(max_examples=examples, **SETTINGS)
    @given(st.data())
    def check(data):
        folder = _mutated_copy(world, src, name, data)
        out = world / "scratch" / f"g{next(_ids)}"
        argv = (["gallery", str(world / "ck"), "--attacks", str(folder), "--render-steps", "0", "--out", str(out)]
                if src == "att" else ["info", str(folder), "--json"])
        code, _ = _run(run_cli, argv, f"cli:{what}")
        shutil.rmtree(folder)
        _check_clean(world, before, str(out) if src == "att" else None, True, code)

    check()


def _idx(data, ndim_default: int) -> bytes:
    """An IDX file: usually a plausible header with random dimensions, sometimes a broken one."""
    ndim = data.draw(st.sampled_from([ndim_default] * 4 + [0, 1, 2, 3, 5]))
    dims = data.draw(st.lists(st.integers(-2, 40), min_size=max(ndim, 0), max_size=max(ndim, 0)))
    magic = data.draw(st.sampled_from([b"\0\0\x08", b"\0\0\x08", b"\0\0\x09", b"\x1f\x8b\x08"]))
    head = magic + bytes([ndim]) + b"".join(struct.pack(">i", d) for d in dims)
    count = 1
    for d in dims:
        count *= max(d, 0)
    body = data.draw(st.sampled_from(["full", "full", "short", "none", "huge-claim"]))
    if body == "huge-claim":
        return magic + bytes([ndim]) + struct.pack(">i", 2**31 - 1) * ndim
    n = {"full": count, "short": count // 2, "none": 0}[body]
    values = data.draw(st.integers(0, 255))
    return head + bytes([values % 12]) * min(n, 200_000)


def test_idx_headers(world):
    """MNIST folders of generated IDX files: loaded, or refused with DataError (exit 2)."""
    from featviz.data import load_dataset
    from featviz.errors import FeatvizError

    before = _tree(world)
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

    @settings(max_examples=120, **SETTINGS)
    @given(st.data())
    def check(data):
        folder = world / "scratch" / f"m{next(_ids)}"
        raw = folder / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name in names:
            (raw / name).write_bytes(_idx(data, 3 if "images" in name else 1))
        INVOCATIONS["idx"] += 1
        try:
            loaded = load_dataset("mnist", data_root=str(folder), image_size=8)
            assert len(loaded.x_train) and len(loaded.x_test)
            EXITS[0] += 1
        except FeatvizError:
            EXITS[2] += 1
        shutil.rmtree(folder)
        _check_clean(world, before, None, False, 0)

    check()


NPZ_DTYPES = ["|u1", "<f4", "<f8", "<f2", "|b1", "<i8", "<u8", "<c8", ">f4", "|O", "<U3", "|V4", "<M8[s]"]


def _npy(data, shape_default: tuple, dtypes: list[str], kind: str) -> bytes:
    """One .npy member: a plausible array, or a header that claims what the body does not hold."""
    import numpy as np

    ndim = data.draw(st.sampled_from([len(shape_default)] * 4 + [0, 1, 2, 5]))
    shape = tuple(data.draw(st.lists(st.sampled_from([1, 1, 3, 4, 8, 8, 0, 2, 10]), min_size=ndim, max_size=ndim)))
    if kind == "x" and ndim == len(shape_default) and data.draw(st.booleans()):
        shape = shape_default
    dtype = data.draw(st.sampled_from(dtypes[:3] * 3 + dtypes))
    claim = data.draw(st.sampled_from(["honest"] * 6 + ["huge", "overflow", "short", "badheader", "fortran"]))
    if claim == "huge":
        shape = tuple(data.draw(st.lists(st.integers(1, 2**40), min_size=max(ndim, 1), max_size=max(ndim, 1))))
    elif claim == "overflow":  # the product wraps around in 64 bits
        shape = (2**32, 2**32, 1, 1)[:max(ndim, 2)]
    if claim in ("huge", "overflow", "short", "badheader") or dtype in ("|O", "|V4", "<M8[s]", "<U3"):
        header = {"descr": dtype, "fortran_order": False, "shape": shape}
        text = repr(header) if claim != "badheader" else data.draw(st.sampled_from(
            ["{'descr': 'zz', 'fortran_order': False, 'shape': (1,)}", "not a dict", "{'shape': (-3,)}",
             "{'descr': '<f4', 'fortran_order': False, 'shape': (2**70,)}", ""]))
        buf = bytearray(b"\x93NUMPY\x01\x00")
        body = (text + " " * (64 - (len(text) + 11) % 64) + "\n").encode("latin1", "replace")
        buf += len(body).to_bytes(2, "little") + body
        return bytes(buf) + b"\0" * data.draw(st.integers(0, 64))
    values = data.draw(st.sampled_from(["zeros", "ones", "random", "nan", "inf", "big", "negative"]))
    count = int(np.prod(shape)) if shape else 1
    rng = np.random.default_rng(data.draw(st.integers(0, 3)))
    arr = {"zeros": np.zeros(count), "ones": np.ones(count), "random": rng.random(count) * 255,
           "nan": np.full(count, np.nan), "inf": np.full(count, np.inf), "big": np.full(count, 1e30),
           "negative": -rng.random(count) * 20}[values]
    with np.errstate(all="ignore"):
        arr = arr.astype(np.dtype(dtype)).reshape(shape)
    if claim == "fortran":
        arr = np.asfortranarray(arr)
    import io

    out = io.BytesIO()
    np.lib.format.write_array(out, arr, allow_pickle=False)
    return out.getvalue()


def _npz_bytes(data) -> bytes:
    """An .npz (a zip of .npy members): x and y generated, sometimes missing, extra or damaged."""
    import io
    import zipfile

    members = {}
    rnd = random.Random(data.draw(st.integers(0, 2**32)))  # uniform odds, unlike hypothesis' own choices
    if rnd.random() < 0.9:
        members["x"] = _npy(data, (6, 1, 8, 8), NPZ_DTYPES, "x")
    if rnd.random() < 0.75:
        members["y"] = _npy(data, (6,), ["<i8", "|u1", "<i4"] + NPZ_DTYPES, "y")
    if rnd.random() < 0.15:
        members[data.draw(st.sampled_from(["z", "X", "x/../y"]))] = b"\x93NUMPY"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))) as zf:
        for name, raw in members.items():
            zf.writestr(f"{name}.npy", raw)
    raw = buf.getvalue()
    if rnd.random() < 0.1:
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    return raw


def test_npz_inputs(world, run_cli):
    """Generated --data .npz files: loaded and their labels checked as attack does (in-process), and
    one in six through `featviz attack --model own.py:tiny --data FILE.npz`: loaded, or refused (exit 2)."""
    from featviz.data.user import check_labels, load_user_data
    from featviz.errors import FeatvizError

    before = _tree(world)

    @settings(max_examples=300, **SETTINGS)
    @given(st.data(), st.sampled_from([None, None, (1, 8, 8), (3, 8, 8), (8, 8, 1)]))
    def check(data, input_shape):
        path = world / "scratch" / f"d{next(_ids)}.npz"
        path.write_bytes(_npz_bytes(data))
        if random.Random(data.draw(st.integers(0, 2**32))).random() < 0.2:
            out = world / "scratch" / f"o{next(_ids)}"
            argv = ["attack", "--model", f"{world / 'own.py'}:tiny", "--random-init", "--data", str(path),
                    "--attack", "fgsm", "--eps", "0.1", "--n-examples", "4", "--out", str(out)]
            if input_shape is not None:
                argv += ["--input-shape", ",".join(map(str, input_shape))]
            code, _ = _run(run_cli, argv, "cli:attack:npz")
            _check_clean(world, before, str(out), True, code)
            return
        INVOCATIONS["npz"] += 1
        try:
            loaded = load_user_data(path, input_shape)
            assert loaded.x_test.dtype.is_floating_point and len(loaded.x_test)
            assert float(loaded.x_test.min()) >= 0 and float(loaded.x_test.max()) <= 1
            check_labels(loaded, 10, "the model")
            EXITS[0] += 1
        except FeatvizError:
            EXITS[2] += 1
        _check_clean(world, before, None, False, 0)

    check()


def test_fuzz_counted_enough_invocations(capsys):
    """At least 1,000 invocations per run, every one ending in 0 or 2 (shown with -s or in the report)."""
    total = sum(INVOCATIONS.values())
    if total == 0:
        pytest.skip("the fuzz tests did not run in this session")
    with capsys.disabled():
        print(f"\nfuzz: {total} invocations, {len(INVOCATIONS)} classes, exits {dict(EXITS)}: "
              + ", ".join(f"{k} {v}" for k, v in sorted(INVOCATIONS.items())))
    assert total >= 1000
    assert set(EXITS) <= {0, 2}
    assert len(INVOCATIONS) >= 30
