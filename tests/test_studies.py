"""The shape every study module shares and what featviz.studies.common gives them: one
budget rule, one job loop (same numbers in worker processes), one spread, one ratio."""

from __future__ import annotations

import dataclasses

import pytest

from featviz.errors import SpecError
from featviz.studies import modules
from featviz.studies.common import map_jobs, primary_endpoint, ratio, split_budget, spread


def test_every_study_module_has_the_same_surface():
    found = modules()
    assert {"hierarchy", "alpha_sweep", "scaling", "images", "compare", "purification"} <= set(found)
    formats = set()
    for name, module in found.items():
        assert dataclasses.is_dataclass(module.Config), name
        assert module.PRESETS and all(isinstance(c, module.Config) for c in module.PRESETS.values()), name
        assert callable(module.run) and callable(module.write), name
        assert module.FORMAT.startswith("featviz-") and "/" in module.FORMAT, name
        formats.add(module.FORMAT.split("/")[0])
    assert len(formats) == len(found)  # the report tells the studies apart by it


@pytest.mark.parametrize("total, stages, parts", [(24, 3, (8, 8, 8)), (24, 4, (6, 6, 6, 6)), (10, 3, (3, 3, 4)),
                                                   (30, 4, (7, 7, 8, 8)), (5, 1, (5,)), (4, 4, (1, 1, 1, 1)),
                                                   (20, 2, (10, 10)), (21, 2, (10, 11))])
def test_split_budget_is_even_puts_the_remainder_last_and_never_exceeds_the_total(total, stages, parts):
    assert split_budget(total, stages) == parts
    assert sum(parts) == total and max(parts) - min(parts) <= 1


def test_split_budget_refuses_a_stage_without_budget():
    with pytest.raises(SpecError, match="at least 4"):
        split_budget(3, 4)
    with pytest.raises(SpecError):
        split_budget(3, 0)


def _square(x: int, offset: float) -> float:
    return x * x + offset


def test_map_jobs_keeps_the_order_and_reports_each_job():
    seen = []
    out = map_jobs(_square, [(i, 0.5) for i in range(5)], done=lambda i, r: seen.append((i, r)))
    assert out == [0.5, 1.5, 4.5, 9.5, 16.5] and seen == list(enumerate(out))
    # in process, a local function may stand in (e.g. with data already loaded bound in)
    assert map_jobs(_square, [(2, 0.0)], local=lambda x, o: -1) == [-1]


def test_spread_is_the_sample_spread_and_keeps_missing_seeds():
    s = spread([1.0, None, 3.0])
    assert s == {"mean": 2.0, "std": pytest.approx(2 ** 0.5), "min": 1.0, "max": 3.0, "per_seed": [1.0, None, 3.0]}
    assert spread([0.5])["std"] == 0.0 and spread([None])["mean"] is None


def test_ratio_is_a_ratio_of_means_with_a_paired_interval():
    r = ratio([1.0, 3.0, 2.0], [1.0, 1.0, 2.0])
    assert r["value"] == pytest.approx(6.0 / 4.0)  # not the mean of per-seed ratios (5/3)
    assert r["per_seed"] == [1.0, 3.0, 1.0] and r["paired"] and r["low"] <= r["value"] <= r["high"]
    p = primary_endpoint("layerwise/joint", r)
    assert p == {"name": "layerwise/joint", "value": r["value"], "low": r["low"], "high": r["high"],
                 "level": r["level"]}
