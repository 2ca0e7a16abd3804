"""Forward hooks on exactly the modules an objective reads, and nothing else.

Hooks live only inside a ``with`` block and are removed in a ``finally``, so a
render (or a crash in the middle of one) never leaves a model carrying hooks.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from ..errors import SpecError

LOGITS = "logits"  # the model's output; not a module, so it needs no hook

Preprocess = Callable[[torch.Tensor], torch.Tensor]


class _StopForward(Exception):
    """Raised by the last needed hook: the rest of the network cannot change the objective."""


def first_tensor(output: object) -> torch.Tensor | None:
    """The tensor a module produced (the first one, for modules returning tuples/lists/dicts)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = first_tensor(item)
            if found is not None:
                return found
    if isinstance(output, dict):
        return first_tensor(list(output.values()))
    return None


class ActivationCapture:
    """Record the outputs of named modules during a forward pass.

    ``with ActivationCapture(model, ["block2"]) as cap: acts = cap.run(images)``
    gives ``acts["block2"]``, the block's output for the (N, C, H, W) ``images``
    (``acts["logits"]`` is the model output when ``"logits"`` is asked for).

    Args:
        model: any ``nn.Module``.
        names: module paths from ``model.named_modules()``, or ``"logits"``.
        preprocess: applied to the images before the model (e.g. normalization).
        stop_early: end the forward pass as soon as every named module has run
            (when the logits are not needed): later layers cannot change the result,
            so computing them is waste.
    """

    def __init__(self, model: nn.Module, names: Iterable[str], preprocess: Preprocess | None = None,
                 stop_early: bool = True):
        self.model = model
        self.names = tuple(dict.fromkeys(names))
        self.preprocess = preprocess
        self.stop_early = stop_early and LOGITS not in self.names
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._acts: dict[str, torch.Tensor] = {}

    def __enter__(self) -> "ActivationCapture":
        modules = dict(self.model.named_modules())
        wanted = [n for n in self.names if n != LOGITS]
        unknown = [n for n in wanted if n not in modules]
        if unknown:
            raise SpecError(f"the model has no module {unknown[0]!r}",
                            "use a name from model.named_modules() or 'logits'")
        try:
            for name in wanted:
                self._handles.append(modules[name].register_forward_hook(self._hook(name)))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._remove()

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            tensor = first_tensor(output)
            if tensor is None:  # reported by run() if the module was asked for
                return
            self._acts[name] = tensor
            if self.stop_early and len(self._acts) == len(self.names):
                raise _StopForward

        return hook

    def run(self, images: torch.Tensor, strict: bool = True) -> dict[str, torch.Tensor]:
        """One forward pass on (N, C, H, W) images; returns ``{name: output}``.

        ``strict``: raise :class:`SpecError` if a named module did not run (else it
        is just absent from the result)."""
        self._acts = {}
        x = self.preprocess(images) if self.preprocess is not None else images
        try:
            out = self.model(x)
        except _StopForward:
            out = None
        acts, self._acts = self._acts, {}
        if LOGITS in self.names:
            acts[LOGITS] = first_tensor(out)
        missing = [n for n in self.names if acts.get(n) is None]
        if missing and strict:
            raise SpecError(f"module {missing[0]!r} produced no tensor in the model's forward pass",
                            "pick a layer the forward pass uses")
        return acts
