"""Names the command line shows before any study runs, in a module that imports nothing
heavy (no torch): the training modes ``featviz compare`` compares and its default ε sweep."""

from __future__ import annotations

COMPARE_MODES = ("joint", "layerwise", "layerwise+joint", "adv")
DEFAULT_EPS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)

__all__ = ["COMPARE_MODES", "DEFAULT_EPS"]
