"""Study pages show their statistical tests as one Holm-corrected table, and demo-sized
sweeps are labelled as such on their pages."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from featviz.report.results import significance_table
from featviz.report.site import Site
from featviz.report.studies import read_studies, study_label, write_study_pages
from featviz.stats import holm

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def _page(tmp_path: Path, folder: Path, label: str) -> str:
    [entry] = write_study_pages(Site(tmp_path / "site", "t"), read_studies([(folder, label)]))
    return (tmp_path / "site" / entry["page"]).read_text(encoding="utf-8")


def _tables(html: str) -> list[str]:
    return re.findall(r'<table class="tests">.*?</table>', html, re.S)


def test_hand_written_comparisons_get_one_table_primary_first_with_holm_over_the_secondaries(tmp_path):
    folder = tmp_path / "hier"
    folder.mkdir()
    primary = {"name": "layerwise/joint relative test MSE (ratio of means, paired)", "value": 1.5, "low": 1.1,
               "high": 2.2, "level": 0.95}
    comparisons = {"shallow/joint": {"value": 12.0, "low": 7.0, "high": 23.0, "level": 0.95,
                                     "tests": {"p_permutation": 0.02}},
                   "layerwise/joint": dict(primary, tests={"p_permutation": 0.0625}),
                   "kernel/joint": {"value": 11.0, "low": 6.0, "high": 20.0, "level": 0.95,
                                    "tests": {"p_permutation": 0.04}}}
    (folder / "results.json").write_text(json.dumps({"format": "featviz-hierarchy/2", "primary": primary,
                                                     "comparisons": comparisons, "summary": {}}))
    table = significance_table(json.loads((folder / "results.json").read_text()))
    assert [r["role"] for r in table["rows"]] == ["primary", "secondary", "secondary"]
    assert table["rows"][0]["comparison"] == "layerwise/joint" and table["rows"][0]["p_holm"] is None
    # no p_holm in the file: Holm over the two secondary tests only (0.02·2 = 0.04, then max(0.04, 0.04))
    assert [r["p_holm"] for r in table["rows"][1:]] == holm([0.02, 0.04]) == [0.04, 0.04]
    html = _page(tmp_path, folder, "hand")
    [tests] = _tables(html)
    assert "Holm-adjusted p" in tests and tests.count("<tr") == 4
    assert tests.index("layerwise/joint") < tests.index("shallow/joint")
    assert "1.5 [1.1, 2.2] (95 % CI)" in tests and "primary endpoint, not adjusted" in tests


def test_shipped_compare_page_has_one_tests_table_with_the_studys_own_holm(tmp_path):
    folder = STUDIES / "compare-digits"
    data = json.loads((folder / "results.json").read_text())
    html = _page(tmp_path, folder, "shipped")
    [tests] = _tables(html)
    assert tests.count("<tr") == len(data["tests"]) + 1  # header + one row per test, no raw lines besides
    rows = significance_table(data)["rows"]
    assert rows[0]["role"] == "primary" and all(r["role"] == "secondary" for r in rows[1:])
    written = {t["p_holm"] for t in data["tests"] if t["role"] == "secondary"}
    assert {r["p_holm"] for r in rows[1:]} == written
    assert "<li>clean accuracy" not in html


def test_quick_sweeps_are_labelled_demo_sized_on_their_page(tmp_path):
    from featviz.cli.cmd_hierarchy import QUICK_LABELS

    folder = tmp_path / "sweep"
    shutil.copytree(STUDIES / "hierarchy-alpha" / "step2", folder)
    data = json.loads((folder / "results.json").read_text())
    (folder / "results.json").write_text(json.dumps(dict(data, label=QUICK_LABELS["alpha-sweep"])))
    html = _page(tmp_path, folder, "sweep")
    assert "demo-sized" in html and "not a measurement" in html
    # an older quick result without a label: the command line says --quick
    assert study_label("x", {"command": "featviz hierarchy scaling --quick --out o"}).startswith("x, demo-sized")
    assert study_label("shipped", {"command": "featviz hierarchy scaling --out o"}) == "shipped"
    assert all(v.startswith("demo-sized") for v in QUICK_LABELS.values())


def test_a_quick_scaling_run_writes_its_demo_label_and_its_page_shows_it(tmp_path, run_cli):
    out = tmp_path / "scaling"
    result = run_cli("hierarchy", "scaling", "--quick", "--threads", "1", "--out", out)
    assert result.code == 0, result.err
    data = json.loads((out / "results.json").read_text())
    assert data["label"].startswith("demo-sized") and "2 seeds" in data["label"]
    html = _page(tmp_path, out, "scaling")
    assert "demo-sized: d 4,5, n 100,200, 2 seeds, 20 steps" in html and "not a measurement" in html


def test_shipped_hierarchy_page_holds_the_primary_outside_the_holm_family():
    data = json.loads((STUDIES / "hierarchy-default" / "results.json").read_text())
    table = significance_table(data)
    rows = table["rows"]
    assert rows[0]["comparison"] == "layerwise/joint" and rows[0]["role"] == "primary" and rows[0]["p_holm"] is None
    assert table["secondary"] == len(rows) - 1 == 5 and "secondary" in table["holm_source"]
    pvals = [data["comparisons"][r["comparison"]]["tests"]["p_permutation"] for r in rows[1:]]
    assert [r["p_holm"] for r in rows[1:]] == holm(pvals)
