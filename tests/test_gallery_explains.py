"""A gallery that explains: the opening paragraph, a verdict box with provenance on every study
page, demo-sized numbers labelled, the attack page saying why its numbers differ from the
overview's, and ensembles' minimal ε shown as not measured."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from featviz.gallery import build_gallery
from test_report import make_attacks, make_checkpoint, make_hierarchy

ROOT = Path(__file__).resolve().parents[1]


def _text(path: Path) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")).split())


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("explains")
    ckpts = [make_checkpoint(root / "joint", "joint", "joint", 1),
             make_checkpoint(root / "adv", "adv", "joint", 3, adv={"attack": "pgd", "eps": 0.1})]
    attacks = make_attacks(root / "attacks", ckpts)
    # a separate strong evaluation at the reference ε, lower than the PGD curve says
    robust = root / "robust"
    robust.mkdir()
    (robust / "results.json").write_text(json.dumps({"models": [
        {"checkpoint": str(c), "clean_accuracy": 0.95, "attacks": [], "evaluations": [
            {"attack": "autoattack-fast", "norm": "linf", "eps": 0.1, "clean_accuracy": 0.95,
             "robust_accuracy": 0.42, "n_examples": 100}]} for c in ckpts], "seconds": 1.0}))
    data = json.loads((attacks / "results.json").read_text())
    data["models"][0]["attacks"].append({"attack": "autoattack-fast", "norm": "linf", "steps": 100, "restarts": 1,
                                         "curve": data["models"][0]["attacks"][0]["curve"],
                                         "min_eps": {"median": None, "mean": None, "broken": 0.5, "n": 10,
                                                     "measured": False}})
    (attacks / "results.json").write_text(json.dumps(data))
    hierarchy = make_hierarchy(root / "hierarchy")  # its config names no seeds: a demo-sized run
    studies = [(ROOT / "studies" / "hierarchy-default", "shipped study hierarchy-default"),
               (ROOT / "studies" / "purification", "")]
    build_gallery(ckpts, root / "site", attacks=attacks, robust=robust, hierarchy=hierarchy, studies=studies,
                  progress=False)
    return root / "site"


def test_the_overview_opens_with_what_featviz_shows_and_the_three_modes(gallery):
    text = _text(gallery / "index.html")
    intro = text.split("Models")[0]
    for words in ("quadratic DenseNets", "joint", "layerwise", "layerwise+joint", "backward feature correction",
                  "feature visualization", "adversarial attacks"):
        assert words in intro, words


def test_demo_sized_numbers_are_labelled(gallery):
    index = _text(gallery / "index.html")
    section = index.split("Hierarchical learning study", 1)[1]
    assert section.lstrip().startswith("(demo-sized)") and "not a measurement" in section
    assert "demo-sized" in _text(gallery / "hierarchy.html")


def test_every_study_page_has_a_verdict_with_its_ci_and_provenance(gallery):
    pages = sorted(gallery.glob("study-*.html"))
    assert len(pages) == 2
    shipped = json.loads((ROOT / "studies" / "hierarchy-default" / "results.json").read_text())["primary"]
    for page in pages:
        html = page.read_text(encoding="utf-8")
        box = re.search(r'<aside class="verdict">(.*?)</aside>', html, re.S)
        assert box, page.name
        words = " ".join(re.sub(r"<[^>]+>", " ", box.group(1)).split())
        assert "% CI" in words and "Numbers from:" in words
    hier = _text(next(p for p in pages if "hierarchy" in p.name))
    assert f"{shipped['value']:.3g} (95 % CI {shipped['low']:.3g} to {shipped['high']:.3g})" in hier
    assert "the whole interval lies above 1" in hier and "shipped study hierarchy-default" in hier
    assert "results folder purification" in _text(next(p for p in pages if "purification" in p.name))


def test_attack_page_says_why_its_numbers_differ_from_the_overview(gallery):
    index, attacks = _text(gallery / "index.html"), _text(gallery / "attacks.html")
    assert "42.0%" in index
    assert "Why these numbers differ from the overview" in attacks
    assert "the overview quotes 42.0% (autoattack-fast" in attacks and "upper bound" in attacks
    assert "not measured" in attacks  # the ensemble's minimal ε


def test_figures_open_full_size_and_are_not_decoded_async(gallery):
    for page in gallery.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert 'decoding="async"' not in html
        for tag in re.findall(r'<img [^>]*class="plot"[^>]*>', html):
            src = re.search(r'src="([^"]+)"', tag).group(1)
            assert f'<a class="zoom" href="{src}"' in html, page.name
