"""Property-based fuzz (hypothesis) over every command's options and over the structured files
featviz reads (results.json of every study and of attack, metrics.json, card.json, IDX headers).

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
    (root / "scratch").mkdir()
    return root


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


def test_command_lines(world, run_cli):
    before = _tree(world)

    @settings(max_examples=650, **SETTINGS)
    @given(_commands(world), _outs(world), st.booleans())
    def check(argv, out_pair, force):
        out, fresh = out_pair
        argv = argv + ["--out", out] + (["--force"] if force else [])
        if argv[0] == "info":
            argv, out = argv[:argv.index("--out")], None
        code, _ = _run(lambda *a: run_cli(*a), argv, f"cli:{argv[0]}{':' + argv[1] if argv[0] == 'hierarchy' else ''}")
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
    assert len(INVOCATIONS) >= 20
