"""The README is a short front door whose every study number is backed by a shipped results file.

A study paragraph links to ``studies/NAME/results.json`` (or a results file below a study folder);
every decimal number, ratio or percentage in that paragraph must be the value at the JSON path that
``SOURCES`` names for it (rounded as printed; a percentage may be the file's fraction × 100).
Headline intervals are printed as ``[low, high]`` and are checked the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS_LINK = re.compile(r"\]\((studies/[^)\s]+\.json)\)")
# a decimal number: 0.0063, 1.47, 54.3, 1e-6 style is not used in study paragraphs
NUMBER = re.compile(r"(?<![\w.\-/])(-?\d+\.\d+)(?![\w.])")


def paragraphs(text: str) -> list[str]:
    blocks, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            blocks.append("\n".join(current))
            current = []
    if current:
        blocks.append("\n".join(current))
    return blocks


def study_paragraphs() -> list[tuple[str, list[str]]]:
    return [(p, RESULTS_LINK.findall(p)) for p in paragraphs(README.read_text()) if RESULTS_LINK.search(p)]


def test_readme_is_a_short_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README has {len(lines)} lines"
    first_screen = "\n".join(lines[:60])
    assert "--model" in first_screen and "--weights" in first_screen, "'Use it on your model' must be on the first screen"


def test_every_study_paragraph_links_to_a_shipped_results_file():
    found = study_paragraphs()
    assert len(found) >= 4, "the README summarizes the shipped studies, each with a link to its results"
    for _, links in found:
        for link in links:
            assert (ROOT / link).is_file(), f"README links to {link}, which the repository does not ship"


# For each results file a README paragraph links to: the JSON path of every decimal number in that
# paragraph, in the order they appear. A number added to the README without its path here fails.
SOURCES = {
    "studies/hierarchy-correction/results.json": ["slopes.stage1.value", "slopes.stage1.low", "slopes.stage1.high",
                                                  "primary.value", "primary.low", "primary.high",
                                                  "slopes.corrected.value", "slopes.corrected.low",
                                                  "slopes.corrected.high"],
    "studies/hierarchy-default/results.json": ["primary.value", "primary.low", "primary.high", "ratios.shallow/joint",
                                               "ratios.kernel/joint", "frozen_control.frozen_over_unfrozen.value",
                                               "frozen_control.frozen_over_unfrozen.low",
                                               "frozen_control.frozen_over_unfrozen.high"],
    "studies/hierarchy-scaling/results.json": ["exponents.kernel.value", "exponents.deep.value", "primary.value",
                                               "primary.low", "primary.high"],
    "studies/image-study/results.json": ["primary.value", "primary.low", "primary.high"],
    "studies/compare-digits/results.json": ["primary.eps", "modes.joint.robust[1].mean", "modes.layerwise.robust[1].mean",
                                            "modes.layerwise+joint.robust[1].mean", "primary.eps", "primary.value",
                                            "primary.low", "primary.high"],
    "studies/prior-renders/results.json": ["units.block2.none.noise_index.value",
                                           "units.block2.pca.relative_activation.value", "primary.value", "primary.low",
                                           "primary.high", "units.block3.pca.noise_index.value"],
    "studies/purification/results.json": [
        "primary.value", "primary.low", "primary.high", "purification.controls.block3.adversarial_minus_noise.value",
        "purification.controls.block3.adversarial_minus_weight_decay.value", "config.eps",
        "purification.accuracy.adversarial.robust_accuracy.mean", "purification.accuracy.noise.robust_accuracy.mean"],
    "studies/robust-digits/autoattack-fast-eps0.1/results.json": ["models[2].attacks[0].curve[0].robust_accuracy",
                                                                  "models[2].attacks[0].curve[0].eps"],
}
PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def lookup(data, path: str):
    """The value at a dotted path with [index] steps (keys may hold '+' or '/')."""
    for key, index in PATH_PART.findall(path):
        data = data[int(index)] if index else data[key]
    return data


def rounds_to(token: str, value: float) -> bool:
    """Is the printed ``token`` (sign dropped: the README prints '−' for minus) ``value`` rounded as
    printed, as is or as a percentage?"""
    decimals = len(token.split(".")[1])
    tolerance = 0.5 * 10 ** -decimals + 1e-12
    return any(abs(abs(v) - float(token)) <= tolerance for v in (value, 100 * value))


def test_every_number_in_a_study_paragraph_is_the_value_at_its_path():
    for paragraph, links in study_paragraphs():
        link = links[-1]
        tokens = NUMBER.findall(paragraph)
        assert link in SOURCES, f"no SOURCES entry for {link}; its paragraph prints {tokens}"
        paths = SOURCES[link]
        assert len(tokens) == len(paths), f"{link}: the paragraph prints {tokens}, SOURCES names {paths}"
        data = json.loads((ROOT / link).read_text())
        for token, path in zip(tokens, paths):
            value = lookup(data, path)
            assert rounds_to(token, value), f"{link}: README prints {token}, {path} holds {value}"


def test_every_study_headline_has_a_confidence_interval():
    """A study linked from the README declares its primary endpoint with a CI."""
    for _, links in study_paragraphs():
        for link in links:
            data = json.loads((ROOT / link).read_text())
            if "models" in data and "format" not in data:
                continue  # a `featviz attack` result, not a study: it has no primary endpoint
            primary = data.get("primary")
            assert isinstance(primary, dict), f"{link} has no primary endpoint"
            for key in ("name", "value", "low", "high", "level"):
                assert key in primary, f"{link}: primary lacks {key}"


def test_the_number_matcher_rounds_as_printed():
    assert rounds_to("1.47", 1.4689) and rounds_to("54.3", 0.5432) and rounds_to("0.014", -0.0145)
    assert not rounds_to("1.47", 1.49) and not rounds_to("0.733", 0.7318)
    assert lookup({"a": [{"b+c": 2.5}]}, "a[0].b+c") == 2.5
    assert NUMBER.findall("ratio 1.47× [1.14, 2.20], p = 0.0625, seed 5, 10^-6, v0.1.2") == ["1.47", "1.14", "2.20", "0.0625"]
