"""The gallery command's pipeline: first produce what the pages need from models and data
(unit renders for checkpoints given none, unit matches across models) as result files,
then write the pages, which only read result folders (:mod:`featviz.report`).

    from featviz.gallery import build_gallery
    build_gallery(["models/digits-joint", "models/digits-layerwise"], "gallery",
                  attacks="runs/attack", hierarchy="runs/hierarchy")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .checkpoint import Checkpoint, load_checkpoint
from .errors import DataError
from .fileio import atomic_directory, atomic_write_json, check_contained
from .report import read_attacks, read_hierarchy, read_studies, write_gallery
from .text import slug
from .vis.matching import MATCHES_FORMAT, match_units, unit_activations
from .vis.render import DEFAULT_STEPS

MATCH_EXAMPLES = 1000   # data examples used to correlate units across models
# The contrast every layer page shows: noise (none), the lucid recipe, and the data prior that
# renders quadratic units as images (pca; see studies/prior-renders). Priors need the dataset:
# without it they are left out. The layer pages show the best of the priors rendered (a rule
# stated on each page); sphere and generator are not rendered here: on digits-joint at 128 steps
# either one alone took 60-75 % of the CPU time of these three, and neither beats pca under that
# rule in studies/prior-renders (sphere: noise index 0.49; generator: a lower relative activation).
GALLERY_REGS = ("none", "standard", "pca")


def render_visuals(ckpt: Checkpoint, out: str | Path, *, layers: Sequence[str] | None = None,
                   regs: Sequence[str] = GALLERY_REGS, steps: int = DEFAULT_STEPS, top_k: int = 5,
                   data_limit: int | None = None, data_root: str | Path | None = None, seed: int = 0,
                   device: torch.device | str = "cpu", progress: bool = True) -> Path:
    """Render every unit of ``layers`` (default: all) of a checkpoint under each setting
    in ``regs`` as one batch per layer, rank the top-``top_k`` training images per unit
    (the first ``data_limit`` images; all by default), and write PNGs and
    ``metrics.json`` (the ``featviz maximize`` format) into the folder ``out``.

    When the checkpoint's dataset cannot be loaded here, the images are rendered
    without dataset examples. Returns ``out``.
    """
    from .data import load_dataset
    from .vis.maximize import maximize, save_maximization

    info = ckpt.card.get("dataset", {})
    try:
        if info.get("source") == "user":  # a model shown with the user's --data
            from .data.user import load_user_data

            examples = load_user_data(info["path"], getattr(ckpt.model, "input_shape", None)).x_train[:data_limit]
        else:
            examples = load_dataset(info.get("name", "?"), data_root=data_root, image_size=info.get("image_size"),
                                    recorded_root=info.get("data_root")).x_train[:data_limit]
    except DataError:
        examples = None
    if examples is None:
        from .vis.regularizers import parse_regs

        regs = [r for r in regs if parse_regs(r, 8).prior is None]
    names = list(layers) if layers else [str(layer["name"]) for layer in ckpt.card.get("layers", [])]
    model = ckpt.model.to(device)
    try:
        result = maximize(model, [f"{name}:*" for name in names], list(regs), steps=steps, seed=seed, device=device,
                          dataset=examples, top_k=top_k if examples is not None else 0, progress=progress)
        save_maximization(result, out, grid=False)
    finally:
        model.cpu()
    return Path(out)


def is_image_model(ckpt: Checkpoint) -> bool:
    """Whether unit images can be rendered: an image model (vector models have no picture)."""
    return len(getattr(ckpt.model, "input_shape", ())) == 3 and bool(ckpt.card.get("layers"))


def _match_data(dataset: dict[str, Any], data_root) -> torch.Tensor:
    """Test images of the checkpoints' dataset, used to correlate units."""
    from .data import load_dataset

    name = dataset.get("name")
    if not name or name == "synthetic":
        raise DataError("the models were not trained on an image dataset")
    data = load_dataset(name, data_root=data_root, image_size=dataset.get("image_size"),
                        recorded_root=dataset.get("data_root"))
    return data.x_test[:MATCH_EXAMPLES]


def compute_matches(checkpoints: Sequence[Checkpoint], data_root: str | Path | None = None) -> dict[str, Any]:
    """Match the units of every layer across image models trained on the same data.

    Models are grouped by dataset (name and image size); in each group of two or more
    the first is the reference and every other model's units are paired one-to-one with
    its units (:func:`~featviz.vis.matching.match_units`) on up to ``MATCH_EXAMPLES``
    test images. A group whose data cannot be loaded is skipped with a note.

    Returns the ``matches.json`` object: ``format``, ``models`` (checkpoint names, in
    order), ``groups: [{dataset, image_size, n_examples, members (indices into models,
    reference first), layers: [{layer, peers: [{model, pairs: [[unit|null, r|null], ...]}]}]}]``
    (one pair per reference unit) and ``note`` (why there are no or fewer pages, or null).
    """
    groups: dict[tuple, list[int]] = {}
    for i, ckpt in enumerate(checkpoints):
        ds = ckpt.card.get("dataset", {})
        if is_image_model(ckpt):
            groups.setdefault((str(ds.get("name")), ds.get("image_size")), []).append(i)
    groups = {key: members for key, members in groups.items() if len(members) > 1}
    result: dict[str, Any] = {"format": MATCHES_FORMAT, "models": [c.name for c in checkpoints], "groups": [],
                              "note": None}
    if not groups:
        result["note"] = None if len(checkpoints) == 1 else "no two image models were trained on the same data"
        return result
    notes = []
    for (name, size), members in groups.items():
        ref = checkpoints[members[0]]
        try:
            x = _match_data(ref.card.get("dataset", {}), data_root)
        except DataError as exc:
            notes.append(f"comparison pages skipped: {exc.one_line()}")
            continue
        layers = []
        for layer in (str(info.get("name")) for info in ref.card.get("layers", [])):
            peers = [i for i in members[1:] if layer in _layer_names(checkpoints[i])]
            if not peers:
                continue
            reference = unit_activations(ref.model, layer, x)
            layers.append({"layer": layer, "peers": [
                {"model": i, "pairs": [list(p) for p in match_units(reference,
                                                                     unit_activations(checkpoints[i].model, layer, x))]}
                for i in peers]})
        result["groups"].append({"dataset": name, "image_size": size, "n_examples": len(x), "members": members,
                                 "layers": layers})
    result["note"] = "; ".join(notes) or None
    return result


def _layer_names(ckpt: Checkpoint) -> list[str]:
    return [str(info.get("name")) for info in ckpt.card.get("layers", [])]


def prepare_gallery(root: str | Path, checkpoints: Sequence[str | Path | Checkpoint], *,
                    visuals: Sequence[Sequence[Path]] | None = None, render_steps: int = 0,
                    data_root: str | Path | None = None, seed: int = 0, device: torch.device | str = "cpu",
                    progress: bool = True) -> tuple[list[Checkpoint], list[list[Path]], Path]:
    """The model-running part of a gallery build, writing into ``root/results/``: render
    the units of every image checkpoint given no ``visuals`` (when ``render_steps`` > 0;
    the settings of :data:`GALLERY_REGS`) into ``vis/<name>/``, and match units across
    models into ``matches.json``. Returns the loaded checkpoints, the visual folders per
    checkpoint and the matches file, ready for :func:`~featviz.report.gallery.write_gallery`."""
    root = Path(root)
    loaded = [c if isinstance(c, Checkpoint) else load_checkpoint(c, device) for c in checkpoints]
    folders: list[list[Path]] = []
    names: list[str] = []
    for i, ckpt in enumerate(loaded):
        names.append(slug(ckpt.name, names))
        given = [Path(f) for f in visuals[i]] if visuals is not None and i < len(visuals) else []
        if not given and render_steps > 0 and is_image_model(ckpt):
            given = [render_visuals(ckpt, root / "results" / "vis" / names[-1], steps=render_steps,
                                    data_root=data_root, seed=seed, device=device, progress=progress)]
        folders.append(given)
    matches = root / "results" / "matches.json"
    atomic_write_json(matches, compute_matches(loaded, data_root))
    return loaded, folders, matches


def build_gallery(checkpoints: Sequence[str | Path | Checkpoint], out: str | Path, *,
                  visuals: Sequence[Sequence[Path]] | None = None, render_steps: int = 0,
                  data_root: str | Path | None = None, seed: int = 0, device: torch.device | str = "cpu",
                  progress: bool = True, **options: Any) -> dict[str, Any]:
    """Build the static gallery for ``checkpoints`` in the folder ``out``, atomically.

    Args:
        checkpoints: checkpoint folders (or loaded :class:`Checkpoint` objects); the
            first is the reference the comparison pages match the others against.
        out: the gallery folder; an existing one is replaced only once the new one is complete.
        visuals: for checkpoint ``i``, ``visuals[i]`` lists ``featviz maximize`` output
            folders (each with ``metrics.json``) whose images fill its layer pages.
        render_steps: when > 0, a checkpoint given no ``visuals`` has every unit rendered
            here (the settings of :data:`GALLERY_REGS`, this many steps) into
            ``out/results/vis/``.
        data_root: where mnist/fashion-mnist/cifar10 live (digits needs nothing); used
            for the dataset examples of renders and to match units.
        seed, device, progress: seed of the renders; where models run; tqdm bars on stderr.
        options: passed to :func:`featviz.report.write_gallery`: ``attacks``
            (a ``featviz attack`` folder), ``hierarchy`` (a ``featviz hierarchy run``
            folder), ``robust`` (a ``featviz attack`` folder at the reference ε that the
            overview quotes, e.g. ``--attack autoattack``), ``studies`` (``(folder, label)`` pairs of study result folders),
            ``reference_eps``, ``title``, ``notes``.

    Unit matches are written to ``out/results/matches.json``. Returns a summary:
    ``index`` (path of index.html), ``pages``, ``bytes``, ``models``...
    """
    out = Path(out)
    # the result folders are read and checked before any model runs or any page is written
    for key in ("attacks", "robust"):
        if options.get(key):
            check_contained(options[key], f"--{key}")
            read_attacks(Path(options[key]))
    if options.get("hierarchy"):
        check_contained(options["hierarchy"], "--hierarchy")
        read_hierarchy(Path(options["hierarchy"]))
    for folder, _ in options.get("studies", ()):
        check_contained(folder, "--study")
    for folder in (f for group in (visuals or []) for f in group):
        check_contained(folder, "--vis")
    read_studies(options.get("studies", ()))
    with atomic_directory(out) as tmp:
        loaded, folders, matches = prepare_gallery(tmp, checkpoints, visuals=visuals, render_steps=render_steps,
                                                   data_root=data_root, seed=seed, device=device, progress=progress)
        summary = write_gallery(tmp, loaded, visuals=folders, matches=matches, progress=progress, **options)
    return summary | {"index": str(out / "index.html"), "out": str(out)}


__all__ = ["GALLERY_REGS", "MATCH_EXAMPLES", "build_gallery", "compute_matches", "is_image_model", "prepare_gallery",
           "render_visuals"]
