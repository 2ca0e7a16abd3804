"""Device selection and seeded random state; nothing here is global."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .errors import FeatvizError


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Map ``auto|cpu|cuda[:N]|mps`` to an available :class:`torch.device`.

    ``auto`` prefers CUDA, then MPS, then CPU. Asking for an accelerator that is not
    present raises :class:`FeatvizError` instead of failing later inside torch.
    """
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise FeatvizError("--device mps: no MPS device on this machine", "use --device cpu or auto")
        return torch.device("mps")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FeatvizError(f"--device {spec}: CUDA is not available here", "use --device cpu or auto")
        try:
            dev = torch.device(spec)
        except RuntimeError:
            raise FeatvizError(f"--device {spec}: not a device name", "use cuda or cuda:N") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise FeatvizError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)",
                f"use cuda:0..cuda:{torch.cuda.device_count() - 1}",
            )
        return dev
    raise FeatvizError(f"--device {spec!r} is not one of auto, cpu, cuda[:N], mps")


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh generator seeded with ``seed`` (the only way featviz draws random numbers)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block (e.g. ``nn.Module`` construction, which draws from torch's global
    RNG) with a fixed seed, restoring the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield
