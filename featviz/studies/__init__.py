"""The studies featviz runs and ships: one module per study, each with the same surface
(``FORMAT``, ``Config``, ``PRESETS``, ``run``, ``write``; docs/studies.md).

- :mod:`featviz.studies.hierarchy`: the synthetic hierarchy study (``featviz hierarchy run``)
- :mod:`featviz.studies.alpha_sweep`: contamination vs α (``featviz hierarchy alpha-sweep``)
- :mod:`featviz.studies.scaling`: samples needed vs dimension (``featviz hierarchy scaling``)
- :mod:`featviz.studies.images`: the image study on a conv teacher (``featviz hierarchy images``)
- :mod:`featviz.studies.compare`: training modes over seeds (``featviz compare``)
- :mod:`featviz.studies.purification`: feature purification (``featviz purify``)
- :mod:`featviz.studies.prior_renders`: pictures of quadratic units under data priors (``featviz prior-renders``)

What they share (the job loop, the budget rule, spread, ratios, the primary endpoint,
writing) is in :mod:`featviz.studies.common`. The libraries they use (nets, training,
attacks, visualization, the hierarchy learners and metrics) never import from here, and
the report only reads what the studies write.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

SHARED = ("common", "names")  # the modules of this package that are not studies


def study_names() -> list[str]:
    """The study modules of this package, found on disk: a new study is one new module."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in SHARED)


def modules() -> dict[str, ModuleType]:
    """Every study module by name (imported on demand: each pulls in torch and its libraries)."""
    return {name: importlib.import_module(f"{__name__}.{name}") for name in study_names()}


__all__ = ["SHARED", "modules", "study_names"]
