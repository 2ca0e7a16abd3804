"""The gallery: hand-made result folders in the docs/formats.md formats in, a static site out."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import torch
from PIL import Image

from featviz.checkpoint import make_card, save_checkpoint
from featviz.errors import FeatvizError
from featviz.gallery import build_gallery
from featviz.nets import QuadraticDenseConvNet
from featviz.report import slugify
from featviz.vis.matching import correlation_matrix, match_units, unit_activations

HOSTILE = '<script>alert("x")</script>'
ADV_EPS = 0.1


def _png(path: Path, noisy: bool, seed: int, size: int = 16) -> str:
    gen = torch.Generator().manual_seed(seed)
    if noisy:
        arr = torch.rand(size, size, generator=gen)
    else:
        ramp = torch.linspace(0, 1, size)
        arr = (ramp[None, :] * ramp[:, None] + 0.1 * torch.rand(1, generator=gen)).clamp(0, 1)
    img = Image.fromarray((arr * 255).to(torch.uint8).numpy(), mode="L").resize((64, 64), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path.name


def make_checkpoint(path: Path, name: str, mode: str, seed: int, adv: dict | None = None) -> Path:
    torch.manual_seed(seed)
    model = QuadraticDenseConvNet(1, 10, [4, 6, 6], image_size=16, input_mean=[0.3], input_std=[0.4]).eval()
    card = make_card(model, dataset={"name": "digits", "image_size": 16},
                     training={"mode": mode, "adv": adv, "epochs": 1, "seed": seed},
                     metrics={"test_accuracy": 0.9 + seed / 100}, name=name)
    return save_checkpoint(path, model, card)


def make_visuals(folder: Path, layers: dict[str, int], seed: int) -> Path:
    """A `featviz maximize` output folder: regs none (noise) and standard (smooth)."""
    images, examples = [], []
    for layer, units in layers.items():
        for unit in range(units):
            for reg, noisy in (("none", True), ("standard", False)):
                name = _png(folder / f"{layer}_{unit}_{reg}.png", noisy, seed + unit)
                images.append({"neuron": f"{layer}:{unit}", "reg": reg, "file": name, "activation": 3.0 + unit,
                               "hf_ratio": 0.8 if noisy else 0.2, "tv": 5.0 if noisy else 0.5,
                               "shift_stability": 0.1 if noisy else 0.9, "steps": 8})
            files = [f"examples/{_png(folder / 'examples' / f'{layer}_{unit}_{k}.png', False, k)}" for k in range(2)]
            examples.append({"neuron": f"{layer}:{unit}", "activations": [2.0, 1.5], "files": files})
    (folder / "metrics.json").write_text(json.dumps({"images": images, "dataset_examples": examples}))
    return folder


def make_attacks(folder: Path, checkpoints: list[Path]) -> Path:
    models = []
    for i, ckpt in enumerate(checkpoints):
        robust = [1.0 - 0.2 * k * (1 if i < 2 else 0.25) for k in range(4)]
        curve = [{"eps": 0.05 * k, "robust_accuracy": max(r, 0.0), "mean_norm": 0.05 * k} for k, r in enumerate(robust)]
        models.append({"checkpoint": str(ckpt), "clean_accuracy": 0.95, "attacks": [
            {"attack": "fgsm", "norm": "linf", "steps": 1, "restarts": 1, "curve": curve,
             "min_eps": {"median": 0.08, "mean": 0.09}},
            {"attack": "pgd", "norm": "linf", "steps": 10, "restarts": 1, "curve": curve,
             "min_eps": {"median": 0.07, "mean": 0.08}}]})
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"models": models, "seconds": 1.5}))
    _png(folder / "examples_joint.png", False, 1)
    _png(folder / "attributions_joint.png", True, 2)
    return folder


def make_hierarchy(folder: Path) -> Path:
    folder.mkdir(parents=True)
    summary = {name: {"rel_test_mse": mse, "feature_r2": [0.9, 0.8, 0.7], "epochs": 10}
               for name, mse in (("joint", 0.01), ("layerwise", 0.04), ("layerwise+joint", 0.02),
                                 ("shallow", 0.2), ("kernel", 0.3))}
    (folder / "results.json").write_text(json.dumps({"config": {"d": 20, "note": HOSTILE}, "summary": summary,
                                                     "curves": {}, "seconds": 3.0,
                                                     "findings": ["joint beats layerwise 4x"]}))
    _png(folder / "error_curves.png", False, 3)
    _png(folder / "feature_r2.png", False, 4)
    return folder


LAYERS = {"block1": 4, "block2": 6, "block3": 6}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("inputs")
    ckpts = [make_checkpoint(root / "joint", "joint", "joint", 1),
             make_checkpoint(root / "layerwise", HOSTILE, "layerwise", 2),
             make_checkpoint(root / "adv", "adv", "joint", 3, adv={"attack": "pgd", "eps": ADV_EPS})]
    visuals = [[make_visuals(root / f"vis{i}", LAYERS, 10 * i)] for i in range(3)]
    return {"checkpoints": ckpts, "visuals": visuals, "attacks": make_attacks(root / "attacks", ckpts),
            "hierarchy": make_hierarchy(root / "hierarchy")}


@pytest.fixture(scope="module")
def gallery(inputs, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("site") / "gallery"
    summary = build_gallery(inputs["checkpoints"], out, visuals=inputs["visuals"], attacks=inputs["attacks"],
                            hierarchy=inputs["hierarchy"], progress=False, notes=["hierarchy stage: quick preset"])
    return out, summary


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.imgs: list[dict] = []
        self.metas: list[dict] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "img":
            self.imgs.append(attrs)
        if tag == "meta":
            self.metas.append(attrs)
        for key in ("href", "src"):
            if attrs.get(key):
                self.refs.append(attrs[key])


def parse(page: Path) -> Links:
    p = Links()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def test_pages_exist_and_every_link_resolves_to_a_file(gallery):
    out, summary = gallery
    pages = sorted(p.name for p in out.glob("*.html"))
    assert set(pages) == set(summary["pages"])
    expected = {"index.html", "attacks.html", "hierarchy.html", "compare-block1.html", "compare-block3.html"}
    expected |= {f"model-{s}-block{l}.html" for s in ("joint", "script-alert-x-script", "adv") for l in (1, 2, 3)}
    assert expected <= set(pages)
    for page in out.glob("*.html"):
        for ref in parse(page).refs:
            parts = urlsplit(ref)
            assert not parts.scheme and not parts.netloc and not ref.startswith("/"), (page.name, ref)
            assert (out / unquote(parts.path)).is_file(), (page.name, ref)


def test_every_page_has_csp_lazy_sized_images_and_no_script(gallery):
    from featviz.report.site import EAGER_IMAGES

    out, _ = gallery
    for page in out.glob("*.html"):
        links = parse(page)
        csp = [m["content"] for m in links.metas if m.get("http-equiv") == "Content-Security-Policy"]
        assert csp and "default-src 'none'" in csp[0] and "script-src" not in csp[0], page.name
        assert links.scripts == 0, page.name
        for i, img in enumerate(links.imgs):  # the first screen loads eagerly, the rest lazily
            assert img.get("loading") == (None if i < EAGER_IMAGES else "lazy") and img.get("width") and img.get("height"), \
                (page.name, img)
            assert img["src"].endswith(".png")


def test_hostile_names_render_as_text(gallery):
    out, _ = gallery
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in index
    for page in out.glob("*.html"):
        assert "<script" not in page.read_text(encoding="utf-8").lower(), page.name
    assert "&lt;script&gt;" in (out / "hierarchy.html").read_text(encoding="utf-8")  # config values too


def test_page_sizes_are_bounded_and_images_are_files(gallery):
    out, summary = gallery
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert len(text.encode()) < 200_000, page.name
        assert "data:" not in text and "base64" not in text
    assert summary["bytes"]["largest_page"] < 200_000
    assert (out / "static" / "style.css").stat().st_size > 500


def test_index_reports_accuracy_and_robustness_at_the_adversarial_eps(gallery):
    out, summary = gallery
    assert summary["reference_eps"] == pytest.approx(ADV_EPS)
    robust = {m["name"]: m["robust_accuracy"] for m in summary["models"]}
    # adv curve: 1 - 0.05*k at eps 0.05k -> at eps 0.1 (k=2): 0.9; the others 1 - 0.2*2 = 0.6
    assert robust["adv"] == pytest.approx(0.9) and robust["joint"] == pytest.approx(0.6)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "90.0%" in index and "60.0%" in index and "hierarchy stage: quick preset" in index
    assert (out / "img" / "robustness.png").is_file() and (out / "img" / "hf_ratio.png").is_file()


def test_layer_page_shows_both_regularizers_examples_and_medians(gallery):
    out, _ = gallery
    page = (out / "model-joint-block2.html").read_text(encoding="utf-8")
    units = re.findall(r'<tr class="unit-row" id="unit-(\d+)">', page)
    assert units == [str(u) for u in range(LAYERS["block2"])]
    assert page.count('class="noisy"') == LAYERS["block2"] and page.count('class="smooth"') == LAYERS["block2"]
    assert page.count('class="px small"') == 2 * LAYERS["block2"]  # two dataset examples per unit
    # the summary table's medians: hf_ratio 0.8 for none vs 0.2 for standard
    assert re.search(r"<code>none</code>.*?0\.8 <meter", page, re.S)
    assert re.search(r"<code>standard</code>.*?0\.2 <meter", page, re.S)


def test_comparison_page_matches_units_across_the_three_models(gallery):
    out, _ = gallery
    page = (out / "compare-block2.html").read_text(encoding="utf-8")
    assert page.count("<tr><td class=\"num\">") == LAYERS["block2"]
    corrs = [float(r) for r in re.findall(r"r=(-?[0-9.]+)", page)]
    assert len(corrs) == 2 * LAYERS["block2"] and all(-1 <= r <= 1 for r in corrs)


def test_attacks_and_hierarchy_pages(gallery):
    out, _ = gallery
    attacks = (out / "attacks.html").read_text(encoding="utf-8")
    assert "attributions joint" in attacks and "examples joint" in attacks and "ε=0.15" in attacks
    hierarchy = (out / "hierarchy.html").read_text(encoding="utf-8")
    assert "layerwise+joint" in hierarchy and ">4<" in hierarchy  # layerwise / joint = 0.04 / 0.01
    assert "<li>joint beats layerwise 4x</li>" in hierarchy
    assert "feature r2" in hierarchy and "error curves" in hierarchy


def test_rebuild_is_deterministic_and_atomic(inputs, gallery, tmp_path):
    out, _ = gallery
    target = tmp_path / "again"
    build_gallery(inputs["checkpoints"], target, visuals=inputs["visuals"], attacks=inputs["attacks"],
                  hierarchy=inputs["hierarchy"], progress=False, notes=["hierarchy stage: quick preset"])
    for page in out.glob("*.html"):
        assert page.read_bytes() == (target / page.name).read_bytes(), page.name
    assert (out / "img" / "robustness.png").read_bytes() == (target / "img" / "robustness.png").read_bytes()
    before = (target / "index.html").read_bytes()
    broken = tmp_path / "broken-attacks"
    broken.mkdir()
    (broken / "results.json").write_text("{not json")
    with pytest.raises(FeatvizError, match="not valid JSON"):
        build_gallery(inputs["checkpoints"], target, attacks=broken, progress=False)
    assert (target / "index.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "broken-attacks"]  # no temp folder left


def test_result_files_pointing_outside_their_folder_are_refused(inputs, tmp_path):
    folder = tmp_path / "vis"
    folder.mkdir()
    _png(tmp_path / "secret.png", False, 0)
    (folder / "metrics.json").write_text(json.dumps({"images": [
        {"neuron": "block1:0", "reg": "none", "file": "../secret.png", "activation": 1.0}]}))
    with pytest.raises(FeatvizError, match="points outside"):
        build_gallery(inputs["checkpoints"][:1], tmp_path / "g", visuals=[[folder]], progress=False)


def test_symlinked_images_leaving_a_result_folder_are_refused(inputs, tmp_path):
    import shutil

    hierarchy = tmp_path / "hierarchy"
    shutil.copytree(inputs["hierarchy"], hierarchy)
    _png(tmp_path / "private.png", True, 9)
    (hierarchy / "leak.png").symlink_to(tmp_path / "private.png")
    out = tmp_path / "g"
    with pytest.raises(FeatvizError, match="leak.png.*outside"):
        build_gallery(inputs["checkpoints"][:1], out, hierarchy=hierarchy, progress=False)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["hierarchy", "private.png"]


def test_match_units_recovers_a_permutation_and_handles_dead_units():
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(200, 5, generator=gen)
    perm = torch.tensor([3, 0, 4, 1, 2])
    other = ref[:, perm] * 2.0 + 1.0 + 0.01 * torch.randn(200, 5, generator=gen)
    pairs = match_units(ref, other)
    assert [perm[c].item() for c, _ in pairs] == list(range(5))
    assert all(r > 0.99 for _, r in pairs)
    dead = torch.cat([ref[:, :2], torch.ones(200, 1)], dim=1)
    assert correlation_matrix(dead, ref)[2].abs().max() == 0
    assert match_units(ref, ref[:, :3])[3:] == [(None, None), (None, None)]


def test_unit_activations_shape_and_mode(inputs):
    from featviz.checkpoint import load_checkpoint

    model = load_checkpoint(inputs["checkpoints"][0]).model.train()
    acts = unit_activations(model, "block2", torch.rand(7, 1, 16, 16))
    assert acts.shape == (7, 6) and torch.isfinite(acts).all() and model.training
    with pytest.raises(ValueError, match="block1, block2, block3"):
        unit_activations(model, "block9", torch.rand(1, 1, 16, 16))


def test_slugify_is_safe_and_unique():
    assert slugify("../../etc/passwd") == "etc-passwd"
    assert slugify(HOSTILE) == "script-alert-x-script"
    assert slugify("", ["model"]) == "model-2"
    assert slugify("Joint", ["joint", "joint-2"]) == "joint-3"


def test_cli_gallery_json_and_errors(inputs, tmp_path, run_cli):
    joint, lw, _ = inputs["checkpoints"]
    out = tmp_path / "site"
    res = run_cli("gallery", joint, lw, "--vis", f"{joint}={inputs['visuals'][0][0]}", "--render-steps", "4",
                  "--hierarchy", inputs["hierarchy"], "--out", out, "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert Path(summary["index"]) == out / "index.html" and (out / "index.html").is_file()
    # the second checkpoint had no --vis: its units were rendered by the gallery itself
    rendered = json.loads((out / "results" / "vis" / "script-alert-x-script" / "metrics.json").read_text())
    assert {im["reg"] for im in rendered["images"]} == {"none", "standard", "pca"} and rendered["dataset_examples"]
    page = (out / "model-script-alert-x-script-block2.html").read_text(encoding="utf-8")
    assert page.count('<tr class="unit-row"') == LAYERS["block2"] and "<code>standard</code>" in page
    assert 'data-col="best-prior"' in page and (out / "img" / "script-alert-x-script" / "block2" / "tradeoff.png").is_file()
    assert "attacks.html" not in summary["pages"] and "hierarchy.html" in summary["pages"]
    for args, message in [((tmp_path / "nope",), "does not exist"),
                          ((joint, lw, "--vis", inputs["visuals"][0][0]), "say which checkpoint"),
                          ((joint, "--attacks", tmp_path), "results.json does not exist")]:
        res = run_cli("gallery", *args, "--out", tmp_path / "x")
        assert res.code == 2 and message in res.err and "Traceback" not in res.err, res.err
        assert len(res.err.strip().splitlines()) == 1
    res = run_cli("gallery", joint, "--out", out)
    assert res.code == 2 and "--force" in res.err


def test_pages_only_read_results_the_build_step_produced(inputs, gallery, tmp_path, monkeypatch):
    """write_gallery runs no model and loads no data: with every model's forward and every
    dataset load broken, the pages come out byte for byte as build_gallery made them, from
    the matches.json that build_gallery wrote."""
    import featviz.data
    from featviz.checkpoint import load_checkpoint
    from featviz.report import write_gallery

    out, _ = gallery
    matches = out / "results" / "matches.json"
    data = json.loads(matches.read_text())
    assert data["models"] == ["joint", HOSTILE, "adv"] and len(data["groups"]) == 1
    group = data["groups"][0]
    assert group["members"] == [0, 1, 2] and group["dataset"] == "digits" and group["n_examples"] > 100
    block2 = next(layer for layer in group["layers"] if layer["layer"] == "block2")
    assert [p["model"] for p in block2["peers"]] == [1, 2]
    assert all(len(p["pairs"]) == LAYERS["block2"] for p in block2["peers"])

    def refuse(*args, **kwargs):
        raise AssertionError("the pages must not load data or run a model")

    monkeypatch.setattr(featviz.data, "load_dataset", refuse)
    checkpoints = [load_checkpoint(c) for c in inputs["checkpoints"]]
    for ckpt in checkpoints:
        monkeypatch.setattr(ckpt.model, "forward", refuse)
        monkeypatch.setattr(ckpt.model, "features", refuse)
    site = tmp_path / "site"
    site.mkdir()
    write_gallery(site, checkpoints, visuals=inputs["visuals"], matches=matches, attacks=inputs["attacks"],
                  hierarchy=inputs["hierarchy"], progress=False, notes=["hierarchy stage: quick preset"])
    for page in out.glob("*.html"):
        assert page.read_bytes() == (site / page.name).read_bytes(), page.name
    # matches computed for other checkpoints are refused with one clear error
    with pytest.raises(FeatvizError, match="recompute it"):
        write_gallery(tmp_path / "other", checkpoints[:2], matches=matches, progress=False)
