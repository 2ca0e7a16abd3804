"""Resumable training checkpoints, without pickles.

An interrupted ``featviz train`` leaves a normal checkpoint folder (the weights so far, a card
marked ``training.resumable``) plus ``resume.safetensors`` (optimizer tensors, the shuffling
generator's state) and ``resume.json`` (everything else: epoch, schedule, history). Both are
data formats: resuming executes nothing from the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .fileio import to_json
from .train import ResumeState

RESUME_TENSORS = "resume.safetensors"
RESUME_JSON = "resume.json"


def resume_files(state: ResumeState) -> dict[str, bytes]:
    """Serialize a :class:`ResumeState` into the two extra files of a resumable checkpoint."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {"generator": state.generator.clone()}
    if state.adversary is not None:
        tensors["adversary_generator"] = state.adversary.clone()
    opt_state: dict[str, dict[str, Any]] = {}
    for pid, entries in state.optimizer["state"].items():
        plain = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"opt.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[key] = value
        opt_state[str(pid)] = plain
    meta = {"stage_index": state.stage_index, "epoch": state.epoch, "seconds": state.seconds,
            "optimizer": {"param_groups": state.optimizer["param_groups"], "state": opt_state},
            "scheduler": state.scheduler, "history": state.history, "stages": state.stages}
    return {RESUME_TENSORS: save(tensors), RESUME_JSON: (to_json(meta) + "\n").encode()}


def load_resume_state(path: str | Path) -> ResumeState:
    """Read the resume files of an interrupted checkpoint folder."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    tensor_file, meta_file = path / RESUME_TENSORS, path / RESUME_JSON
    if not tensor_file.is_file() or not meta_file.is_file():
        raise CheckpointError(f"{path} is not a resumable checkpoint (no {RESUME_JSON})",
                              "only a run stopped with Ctrl-C can be resumed")
    try:
        tensors = load(tensor_file.read_bytes())
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        opt_state: dict[int, dict[str, Any]] = {}
        for pid, plain in meta["optimizer"]["state"].items():
            entry = dict(plain)
            prefix = f"opt.{pid}."
            entry.update({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            opt_state[int(pid)] = entry
        return ResumeState(
            stage_index=int(meta["stage_index"]), epoch=int(meta["epoch"]),
            optimizer={"state": opt_state, "param_groups": meta["optimizer"]["param_groups"]},
            scheduler=meta["scheduler"], generator=tensors["generator"], history=meta["history"],
            stages=meta["stages"], seconds=float(meta["seconds"]), adversary=tensors.get("adversary_generator"))
    except (SafetensorError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: resume files are damaged ({exc.__class__.__name__})",
                              "start the training again without --resume") from None
