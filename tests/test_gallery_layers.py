"""The gallery's layer pages: one row per unit (none | standard | the best prior | top dataset
examples) with the numbers of the results under each picture, and a trade-off plot."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from featviz.report import write_gallery
from featviz.report.gallery import BEST_PRIOR_RULE, best_prior, row_columns
from test_report import _png, make_checkpoint

BANDS = {"like_data": 0.1, "noisy": 0.5}
UNITS = 3
# (reg, noise index, relative activation) per setting; "pca" is like the data with the higher
# activation, "sphere" is like the data but weaker, "generator" is stronger but noisy
SETTINGS = {"none": (0.9, 40.0), "standard": (0.4, 8.0), "sphere": (0.05, 1.5), "pca": (0.08, 3.0),
            "generator": (0.3, 20.0)}


def _metrics(folder: Path) -> dict:
    images, examples = [], []
    for unit in range(UNITS):
        for reg, (ni, rel) in SETTINGS.items():
            name = _png(folder / f"block2_{unit}_{reg}.png", reg == "none", unit)
            images.append({"neuron": f"block2:{unit}", "reg": reg, "file": name, "activation": 2.0 * rel + unit,
                           "relative_activation": rel + unit / 10, "hf_ratio": ni, "tv": 0.3, "shift_stability": 0.9,
                           "steps": 8, "noise_index": ni + unit / 100, "converged": not (reg == "none" and unit == 1),
                           "flat": False})
        files = [f"examples/{_png(folder / 'examples' / f'block2_{unit}_{k}.png', False, k)}" for k in range(4)]
        examples.append({"neuron": f"block2:{unit}", "activations": [4.0, 3.0, 2.0, 1.0], "files": files})
    # unit 0's none render is flat: no hf_ratio, no noise index
    images[0].update(flat=True, hf_ratio=None, noise_index=None)
    return {"images": images, "dataset_examples": examples, "noise_index_bands": BANDS,
            "priors": {"sphere": {}, "pca": {}, "generator": {}}, "input_shape": [1, 16, 16],
            "baseline": {"hf_ratio": 0.02, "tv": 0.2, "n": 10, "white_noise": {"hf_ratio": 0.8, "tv": 0.7, "n": 8}}}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("layers")
    ckpt = make_checkpoint(root / "joint", "joint", "joint", 1)
    vis = root / "vis"
    metrics = _metrics(vis)
    (vis / "metrics.json").write_text(json.dumps(metrics))
    out = root / "site"
    out.mkdir()
    write_gallery(out, [ckpt], visuals=[[vis]], progress=False)
    return out, metrics


class Rows(HTMLParser):
    """The unit-rows table: header columns, and per row the cells' data-col and the numbers."""

    def __init__(self):
        super().__init__()
        self.header: list[str] = []
        self.rows: list[list[dict]] = []
        self.imgs: list[dict] = []
        self._in_table = self._in_head = False
        self._cell: dict | None = None
        self._value: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("class") == "unit-rows":
            self._in_table = True
        if not self._in_table:
            if tag == "img":
                self.imgs.append(attrs)
            return
        if tag == "thead":
            self._in_head = True
        elif tag == "th" and self._in_head and "data-col" in attrs:
            self.header.append(attrs["data-col"])
        elif tag == "tr" and attrs.get("class") == "unit-row":
            self.rows.append([])
        elif tag == "td" and self.rows:
            self._cell = {"col": attrs.get("data-col"), "reg": attrs.get("data-reg"), "values": {}, "text": ""}
            self.rows[-1].append(self._cell)
        elif tag == "span" and self._cell is not None and (attrs.get("class") or "").startswith("v-"):
            self._value = attrs["class"][2:]
            self._cell["values"].setdefault(self._value, [])

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag == "table":
            self._in_table = False
        elif tag == "span":
            self._value = None
        elif tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
            if self._value:
                self._cell["values"][self._value].append(data)


def _page(site) -> tuple[str, Rows]:
    out, _ = site
    html = (out / "model-joint-block2.html").read_text(encoding="utf-8")
    rows = Rows()
    rows.feed(html)
    return html, rows


def test_best_prior_rule_on_constructed_cases():
    def rows(**medians):
        return [{"reg": reg, "noise_index": ni, "relative_activation": rel} for reg, (ni, rel) in medians.items()]

    priors = ["sphere", "pca", "generator"]
    # like the data (NI <= 0.1): sphere and pca; pca keeps more activation; generator is stronger but noisy,
    # standard is not a prior whatever its numbers
    assert best_prior(rows(standard=(0.0, 99.0), sphere=(0.05, 1.5), pca=(0.08, 3.0), generator=(0.3, 20.0)),
                      priors, 0.1) == "pca"
    # none like the data: the lowest median noise index
    assert best_prior(rows(sphere=(0.4, 1.5), pca=(0.2, 3.0), generator=(0.3, 20.0)), priors, 0.1) == "pca"
    assert best_prior(rows(sphere=(0.4, 1.5), pca=(None, 3.0), generator=(0.3, 20.0)), priors, 0.1) == "generator"
    # a missing relative activation counts last among those like the data
    assert best_prior(rows(sphere=(0.05, 1.5), pca=(0.08, None)), priors, 0.1) == "sphere"
    assert best_prior(rows(none=(0.9, 40.0), standard=(0.4, 8.0)), priors, 0.1) is None
    assert "0.1" in BEST_PRIOR_RULE.format(like_data=0.1)
    assert [c["reg"] for c in row_columns(["none", "standard", "sphere", "pca"], "pca")] == \
        ["none", "standard", "pca", "sphere"]


def test_every_unit_row_has_none_standard_best_prior_and_examples_in_order(site):
    html, rows = _page(site)
    # the picture columns: none, standard, the best prior (pca, by the rule), the other settings rendered
    assert rows.header == ["reg", "reg", "best-prior", "reg", "reg", "examples"]
    assert re.search(r'data-col="best-prior">best prior: <code>pca</code>', html)
    assert "Best prior for this layer: <code>pca</code>" in html and "at most 0.1" in html
    assert len(rows.rows) == UNITS
    for row in rows.rows:
        assert [c["reg"] for c in row[:3]] == ["none", "standard", "pca"]
        assert [c["col"] for c in row][2] == "best-prior" and row[-1]["col"] == "examples"
        assert [c["reg"] for c in row[3:-1]] == ["sphere", "generator"]


def test_numbers_under_each_picture_are_the_results(site):
    _, metrics = site
    _, rows = _page(site)
    by_key = {(im["neuron"], im["reg"]): im for im in metrics["images"]}
    for unit, row in enumerate(rows.rows):
        for cell in row[:-1]:
            im = by_key[(f"block2:{unit}", cell["reg"])]
            values = {k: v[0] for k, v in cell["values"].items()}
            assert float(values["act"]) == pytest.approx(im["activation"], rel=5e-3)
            assert float(values["rel"]) == pytest.approx(im["relative_activation"], rel=5e-3)
            if im["noise_index"] is None:
                assert values["ni"] == "–" and "flat" in cell["text"]
            else:
                assert float(values["ni"]) == pytest.approx(im["noise_index"], rel=5e-3, abs=1e-3)
            assert ("not converged" in cell["text"]) == (im["converged"] is False)
        examples = row[-1]["values"]
        assert [float(a) for a in examples["act"]] == [4.0, 3.0, 2.0, 1.0]
        assert [float(r) for r in examples["rel"]] == [1.0, 0.75, 0.5, 0.25]


def test_tradeoff_plot_is_written_and_referenced_with_alt_text(site):
    out, _ = site
    html, rows = _page(site)
    png, svg = out / "img" / "joint" / "block2" / "tradeoff.png", out / "img" / "joint" / "block2" / "tradeoff.svg"
    assert png.stat().st_size > 1000 and svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    plot = [img for img in rows.imgs if img.get("src") == "img/joint/block2/tradeoff.png"]
    assert len(plot) == 1 and plot[0]["class"] == "plot"
    alt = plot[0]["alt"]
    assert "noise index" in alt and all(reg in alt for reg in SETTINGS) and "pca (best prior)" in alt
    assert 'href="img/joint/block2/tradeoff.svg"' in html
    # the thresholds of the colours and the flat render left out are stated with the figure
    assert "NI ≤ 0.1 like the data, NI ≥ 0.5 noise-like" in html and "1 render without a noise index" in html
    assert "at the model's input size 16×16" in html and "log scale" in html
