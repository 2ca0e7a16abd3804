"""The documented shapes (docs/formats.md) of the study result files the gallery reads, checked
with :func:`featviz.fileio.validate` before any page is written: types and finite numbers (the
JSON reader already refuses NaN/Infinity, deep nesting and huge integers, and
:func:`featviz.fileio.check_values` keeps accuracies in [0, 1])."""

from __future__ import annotations

from ..fileio import ANY, NUM, STR, Nullable, Opt, validate

PM = {"mean": Opt(NUM), "std": Opt(NUM), "values": Opt([Opt(NUM)])}   # mean ± std over seeds
PMN = {"mean": Nullable(NUM), "std": Nullable(NUM)}                  # the same, both keys present (page macros)
INTERVAL = {"value": Opt(NUM), "low": Opt(NUM), "high": Opt(NUM)}
FILES = Opt({"*": Opt(STR)})

COMPARE = {   # the page's template reads these keys directly: they must be present (values may be null)
    "modes": {"*": {"seeds": Opt([ANY]), "clean_accuracy": Opt(PMN), "min_eps": Opt(PMN),
                    "robust": Opt([{"eps": NUM, "mean": Nullable(NUM), "std": Nullable(NUM)}]),
                    "render": Opt({"*": {"*": {"hf_ratio": Opt(PMN), "shift_stability": Opt(PMN),
                                               "relative_activation": Opt(PMN)}}})}},
    "tests": [{"what": Opt(STR), "statement": Nullable(STR)}],
    "eps": Opt([NUM]), "headline_eps": Opt([NUM]),
    "attack": Opt({"label": Opt(STR), "name": Opt(STR)}),
    "budget": {"total_steps": {"*": Opt(NUM)}},
    "render_setup": {"steps": Nullable(ANY), "units": Nullable(ANY)},
    "baseline": {"hf_ratio": Nullable(NUM), "tv": Nullable(NUM)},
    "n_test": Opt(NUM), "label": Opt(STR), "dataset": Opt(STR), "files": FILES,
}

HIERARCHY = {
    "summary": {"*": Opt({"rel_test_mse": Opt(NUM), "rel_test_mse_std": Opt(NUM), "feature_r2": Opt([Opt(NUM)]),
                          "total_steps": Opt(NUM), "lr": Opt([Opt(NUM)])})},
    "config": Opt({"*": ANY}),
    "findings": Opt([STR]),
    "files": Opt([STR]),
}

ALPHA_SWEEP = {"alphas": [NUM], "slopes": {"*": Opt(INTERVAL)}, "findings": Opt([STR]), "files": Opt([STR])}
SCALING = {"exponents": {"*": Opt(INTERVAL)}, "n_exponents": Opt({"*": Opt(INTERVAL)}), "findings": Opt([STR]),
           "files": Opt([STR])}
PURIFICATION_SECTION = {
    "hf_ratio": Opt({"clean": Opt({"*": Opt(PM)}), "adversarial": Opt({"*": Opt(PM)}),
                     "clean_scratch": Opt({"*": Opt(PM)}), "data": Opt(NUM)}),
    "adv_over_clean": Opt({"*": Opt(PM)}),
    "residual_ratio": Opt({"*": Opt(ANY)}),
}
PURIFICATION = {"purification": PURIFICATION_SECTION, "findings": Opt([STR])}
IMAGE_STUDY = {
    "teacher": {"alignment": {"*": {"r2_to_teacher": Opt([Opt(NUM)]), "r2_from_teacher": Opt([Opt(NUM)]),
                                    "cka": Opt([Opt(NUM)])}},
                "summary": Opt({"*": Opt({"rel_test_mse": Opt(NUM), "rel_test_mse_std": Opt(NUM),
                                          "total_steps": Opt(NUM)})}),
                "ratio": Opt({"*": Opt(PM)}),
                "correction": Opt({"*": Opt({"*": Opt(PM)})})},
    "frozen_vs_unfrozen": {"*": {"difference": Opt(PM), "metric": Opt(STR)}},
    "units": Opt([{"layer": Opt(STR), "unit": Opt(NUM), "files": {"*": STR},
                   "matches": Opt({"*": Opt({"unit": Opt(NUM), "corr": Opt(NUM)})})}]),
    "config": Opt({"freeze": Opt([STR])}),
    "purification": Opt(PURIFICATION_SECTION),
}
# What every study's results.json may carry and the generic page reads (docs/formats.md)
GENERIC = {"format": Opt(STR), "primary": Opt({"name": Opt(STR), "value": Opt(NUM), "low": Opt(NUM),
                                               "high": Opt(NUM), "level": Opt(NUM)}),
           "findings": Opt([STR]), "files": Opt(ANY), "seconds": Opt(NUM), "command": Opt(STR)}
STUDIES = {"compare": COMPARE, "hierarchy": HIERARCHY, "alpha-sweep": ALPHA_SWEEP, "scaling": SCALING,
           "purification": PURIFICATION, "image-study": IMAGE_STUDY}


__all__ = ["ANY", "COMPARE", "GENERIC", "HIERARCHY", "IMAGE_STUDY", "NUM", "Opt", "STR", "STUDIES", "validate"]
