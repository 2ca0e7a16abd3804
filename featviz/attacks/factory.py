"""Attacks by name, as the command line and the training recipes ask for them.

The names, defaults and factories live in :mod:`featviz.attacks.specs` (importable without
torch); this module builds the attack objects.
"""

from __future__ import annotations

import importlib

from ..errors import SpecError
from .core import Attack
from .specs import ATTACKS, DEFAULT_SWEEP, REGISTRY, names_hint

__all__ = ["ATTACKS", "DEFAULT_SWEEP", "make_attack"]


def make_attack(name: str, *, steps: int | None = None, restarts: int = 1, step_size: float | None = None,
                loss: str = "ce", random_start: bool | None = None) -> Attack:
    """Build an attack by name with its registered defaults (see ``featviz.attacks.specs``).

    ``steps`` is the attack's budget (gradient steps, or queries for Square); ``restarts``,
    ``step_size``, ``loss`` and ``random_start`` apply to the attacks that list them.
    """
    spec = REGISTRY.get(name)
    if spec is None:
        raise SpecError(f"unknown attack {name!r}", names_hint())
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise SpecError(f"--steps must be a positive integer, got {steps!r}")
    if not isinstance(restarts, int) or restarts < 1:
        raise SpecError(f"--restarts must be a positive integer, got {restarts!r}")
    given = {"steps": steps, "restarts": None if restarts == 1 else restarts, "step_size": step_size,
             "loss": None if loss == "ce" else loss, "random_start": random_start}
    for key, value in given.items():
        if value is not None and key not in spec.options:
            flag = "--" + key.replace("_", "-")
            raise SpecError(f"{flag} does not apply to {name}")
    if name == "fgsm" and steps not in (None, 1):
        raise SpecError(f"fgsm takes exactly one step, got --steps {steps}", "use --attack pgd for more steps")
    kwargs = dict(spec.defaults)
    kwargs.update({k: v for k, v in given.items() if v is not None})
    if name == "fgsm":
        kwargs.pop("steps")
    module, _, func = spec.factory.partition(":")
    factory = getattr(importlib.import_module(f".{module}", __package__), func)
    attack = factory(**kwargs)
    attack.bisect = spec.bisect
    return attack
