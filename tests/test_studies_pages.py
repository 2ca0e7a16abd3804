"""Gallery pages of study folders: recognised by their results.json, numbers shown as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from featviz.errors import FeatvizError
from featviz.report.site import Site
from featviz.report.results import purification_rows
from featviz.report.studies import read_studies, study_kind, write_study_pages

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def test_study_kind_is_read_from_the_format_tag_of_every_study_module():
    from featviz.studies import modules

    primary = {"name": "x", "value": 1.0, "low": None, "high": None, "level": 0.95}
    kinds = {study_kind({"format": module.FORMAT, "primary": primary}) for module in modules().values()}
    assert None not in kinds and len(kinds) == len(modules())
    assert study_kind({"format": "featviz-compare/1", "primary": primary}) == "compare"
    assert study_kind({"format": "featviz-hierarchy-alpha/1", "primary": primary}) == "alpha-sweep"
    assert study_kind({"format": "featviz-hierarchy/2", "primary": primary}) == "hierarchy"
    assert study_kind({"format": "featviz-correction/1", "primary": primary}) == "correction"  # a new study
    # no sniffing: fields that look like a study without its tag are not one, nor a tag without a primary
    assert study_kind({"teacher": {}, "frozen_vs_unfrozen": {}, "primary": primary}) is None
    assert study_kind({"format": "featviz-compare/1"}) is None
    assert study_kind({"format": "featviz-checkpoint/1", "models": []}) is None


def test_every_shipped_study_has_a_format_and_a_primary_endpoint():
    for path in sorted(STUDIES.glob("*/results.json")) + sorted(STUDIES.glob("hierarchy-alpha/*/results.json")):
        data = json.loads(path.read_text())
        assert study_kind(data) is not None, path
        p = data["primary"]
        assert set(p) >= {"name", "value", "low", "high", "level"} and isinstance(p["value"], float), path


def test_a_folder_that_is_not_a_study_is_refused_before_any_page(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "results.json").write_text(json.dumps({"models": []}))
    with pytest.raises(FeatvizError, match="not the result of a study"):
        read_studies([(tmp_path / "x", "x")])
    with pytest.raises(FeatvizError, match="does not exist"):
        read_studies([(tmp_path / "missing", "m")])


def test_purification_page_shows_the_shipped_numbers(tmp_path):
    folder = STUDIES / "purification"
    data = json.loads((folder / "results.json").read_text())
    site = Site(tmp_path, "t")
    [entry] = write_study_pages(site, read_studies([(folder, "shipped")]))
    assert entry["kind"] == "purification" and entry["page"] == "study-purification-shipped.html"
    html = (tmp_path / entry["page"]).read_text(encoding="utf-8")
    clean2 = data["purification"]["hf_ratio"]["clean"]["block2"]["mean"]
    assert f"{clean2:.3g}" in html
    rows = dict(purification_rows(data))
    assert rows["median hf_ratio of the data&#39;s own images".replace("&#39;", "'")] == \
        f"{data['purification']['hf_ratio']['data']:.3g}"
    # the figures of the folder come along, copied into the site
    assert any(p.suffix == ".png" for p in tmp_path.rglob("*.png"))


def test_two_studies_of_one_kind_get_two_pages(tmp_path):
    folder = STUDIES / "purification"
    entries = write_study_pages(Site(tmp_path, "t"), read_studies([(folder, "a"), (folder, "a")]))
    assert len({e["page"] for e in entries}) == 2


def test_the_overview_quotes_the_strongest_attack():
    from featviz.report.gallery import _pick_attack

    attacks = [{"attack": "fgsm"}, {"attack": "pgd"}, {"attack": "autoattack-fast"}, {"attack": "deepfool"}]
    assert _pick_attack(attacks)["attack"] == "autoattack-fast"
    assert _pick_attack([{"attack": "cw"}, {"attack": "pgd"}])["attack"] == "pgd"
    assert _pick_attack([]) is None
