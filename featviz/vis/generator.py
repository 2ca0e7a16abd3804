"""A small generator for the ``generator`` prior: a Gaussian VAE trained on the data in
seconds, cached on disk.

The likelihood is Gaussian with a fixed σ = :data:`LIKELIHOOD_SIGMA` (0.1 in pixel
units): a Bernoulli (cross-entropy) likelihood on grey digits keeps few active latents
and decodes blurry averages, which lets almost no unit reach its best real image.

The cache holds ``vae.safetensors`` + ``vae.json`` in ``CACHE/generators/KEY/``, KEY a
digest of the data's bytes and the settings (latent size, epochs, seed, architecture),
so a model trained on the same data and settings is reused whatever checkpoint is
rendered. CACHE is ``$FEATVIZ_CACHE``, else ``$XDG_CACHE_HOME/featviz``, else
``~/.cache/featviz``. Delete the folder to retrain.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..devices import generator, seeded
from ..fileio import atomic_write_bytes, atomic_write_json

LIKELIHOOD_SIGMA = 0.1
HIDDEN = 256
EPOCHS = 300
BATCH = 128
LR = 2e-3
VERSION = 1  # bump when the architecture or training changes: old cache entries are then not reused


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where trained helper models (generators, judges) are cached (see the module docstring)."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("FEATVIZ_CACHE"):
        return Path(os.environ["FEATVIZ_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "featviz"


def data_key(tensors: list[torch.Tensor], settings: dict) -> str:
    """A digest of the tensors' bytes and the settings: the cache entry's name."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class VAE(nn.Module):
    """An MLP VAE on flattened images: D -> HIDDEN -> (μ, log σ²) in L; L -> HIDDEN -> D (sigmoid)."""

    def __init__(self, dim: int, latent: int, hidden: int = HIDDEN):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, dim), nn.Sigmoid())
        self.latent = latent

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def loss(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Negative ELBO per image (nats, up to a constant), reconstruction and KL parts."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=gen).to(mu)
        recon = self.decoder(mu + eps * (0.5 * logvar).exp())
        rec = (recon - x).pow(2).sum(1) / (2 * LIKELIHOOD_SIGMA ** 2)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return (rec + kl).mean(), rec.mean(), kl.mean()


def chi2_quantile(dof: int, q: float) -> float:
    """The ``q`` quantile of a χ² distribution with ``dof`` degrees of freedom."""
    from scipy.stats import chi2

    return float(chi2.ppf(q, dof))


def train_vae(images: torch.Tensor, latent: int, *, seed: int = 0, epochs: int | None = None,
              progress: bool = False) -> tuple[VAE, dict]:
    """Train a :class:`VAE` on (N, C, H, W) images in [0, 1] (90 % train, 10 % held out);
    returns it with its quality: held-out reconstruction RMSE (decoding the mean code),
    the same for the data mean as a reference, KL in nats and the active latents
    (variance of the code means > 0.01)."""
    epochs = epochs or EPOCHS
    x = images.detach().float().flatten(1).cpu()
    gen = generator(seed)
    order = torch.randperm(len(x), generator=gen)
    held = max(1, len(x) // 10)
    x_val, x_tr = x[order[:held]], x[order[held:]]
    with seeded(seed):
        vae = VAE(x.shape[1], latent)
    opt = torch.optim.Adam(vae.parameters(), lr=LR)
    steps_per_epoch = math.ceil(len(x_tr) / BATCH)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(len(x_tr), generator=gen)
        for i in range(0, len(x_tr), BATCH):
            loss, _, _ = vae.loss(x_tr[perm[i:i + BATCH]], gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if progress and (epoch + 1) % 50 == 0:
            print(f"generator: epoch {epoch + 1}/{epochs}, loss {float(loss.detach()):.1f}", file=sys.stderr)
    vae.eval()
    with torch.no_grad():
        mu, _ = vae.encode(x_val)
        rmse = float(F.mse_loss(vae.decoder(mu), x_val).sqrt())
        _, rec, kl = vae.loss(x_val, generator(seed + 1))
        active = int((vae.encode(x)[0].var(0) > 0.01).sum())
    info = {"model": "gaussian-vae", "latent": latent, "likelihood_sigma": LIKELIHOOD_SIGMA, "epochs": epochs,
            "seed": seed, "heldout_rmse": rmse,
            "heldout_rmse_of_mean": float((x_val - x_tr.mean(0)).pow(2).mean().sqrt()),
            "heldout_kl": float(kl), "active_latents": active, "train_images": len(x_tr),
            "seconds": round(time.perf_counter() - start, 2)}
    return vae, info


def load_or_train_vae(images: torch.Tensor, latent: int, *, seed: int = 0, cache_dir: str | Path | None = None,
                      progress: bool = False, epochs: int | None = None) -> tuple[VAE, dict]:
    """The cached VAE for these images and settings, trained (and cached) if missing.
    The returned info says whether it came from the cache (``cached``) and which entry
    (``cache_key``, relative to :func:`cache_root`)."""
    from safetensors.torch import load_file, save

    epochs = epochs or EPOCHS
    settings = {"latent": latent, "seed": seed, "epochs": epochs, "hidden": HIDDEN, "sigma": LIKELIHOOD_SIGMA,
                "version": VERSION}
    folder = cache_root(cache_dir) / "generators" / data_key([images.float()], settings)
    weights, card = folder / "vae.safetensors", folder / "vae.json"
    key = f"{folder.parent.name}/{folder.name}"
    dim = images[0].numel()
    if weights.exists() and card.exists():
        try:
            vae = VAE(dim, latent)
            vae.load_state_dict(load_file(str(weights)))
            vae.eval()
            return vae, json.loads(card.read_text()) | {"cached": True, "cache_key": key}
        except (OSError, RuntimeError, ValueError, KeyError):
            pass  # a damaged entry is retrained and overwritten
    vae, info = train_vae(images, latent, seed=seed, epochs=epochs, progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(weights, save({k: v.contiguous() for k, v in vae.state_dict().items()}))
    atomic_write_json(card, info)
    return vae, info | {"cached": False, "cache_key": key}


__all__ = ["LIKELIHOOD_SIGMA", "VAE", "cache_root", "chi2_quantile", "data_key", "load_or_train_vae", "train_vae"]
