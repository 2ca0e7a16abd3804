"""The README is a short front door whose every study number is backed by a shipped results file.

A study paragraph links to ``studies/NAME/results.json`` (or a results file below a study folder);
every decimal number, ratio or percentage in that paragraph must be a value held in that file
(rounded as printed; a percentage may be the file's fraction × 100). Headline intervals are printed
as ``[low, high]`` and are therefore checked the same way.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

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


def numeric_leaves(obj) -> list[float]:
    found: list[float] = []
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, (int, float)):
            if math.isfinite(item):
                found.append(float(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def held(token: str, leaves: list[float]) -> bool:
    """Is the printed ``token`` a rounding of some value in the file (as is, or as a percentage)?"""
    decimals = len(token.split(".")[1])
    printed = float(token)
    tolerance = 0.5 * 10 ** -decimals + 1e-12
    return any(abs(v - printed) <= tolerance or abs(100 * v - printed) <= tolerance for v in leaves)


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


@pytest.mark.parametrize("index", range(12))
def test_every_number_in_a_study_paragraph_is_in_its_results_file(index):
    found = study_paragraphs()
    if index >= len(found):
        pytest.skip(f"the README has {len(found)} study paragraphs")
    paragraph, links = found[index]
    leaves = [v for link in links for v in numeric_leaves(json.loads((ROOT / link).read_text()))]
    missing = [t for t in NUMBER.findall(paragraph) if not held(t, leaves)]
    assert not missing, f"numbers not found in {', '.join(links)}: {missing}\n---\n{paragraph}"


def test_every_study_headline_has_a_confidence_interval():
    """A study linked from the README declares its primary endpoint with a CI."""
    for _, links in study_paragraphs():
        for link in links:
            data = json.loads((ROOT / link).read_text())
            primary = data.get("primary")
            assert isinstance(primary, dict), f"{link} has no primary endpoint"
            for key in ("name", "value", "low", "high", "level"):
                assert key in primary, f"{link}: primary lacks {key}"


def test_the_number_matcher_rounds_as_printed():
    assert held("1.47", [1.4689]) and held("54.3", [0.5432]) and not held("1.47", [1.49])
    assert NUMBER.findall("ratio 1.47× [1.14, 2.20], p = 0.0625, seed 5, 10^-6, v0.1.2") == ["1.47", "1.14", "2.20", "0.0625"]
