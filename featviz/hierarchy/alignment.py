"""Exact, invariant alignment of quadratic layers, read from the weights (no sampling).

A unit of a quadratic layer that reads the input x ~ N(0, I_d) directly is a polynomial of
degree two, f(x) = xᵀMx + bᵀx + c. In the Hermite basis that is orthonormal for the Gaussian,

    f = Σ_i M_ii (x_i² − 1) + 2 Σ_{i<j} M_ij x_i x_j + bᵀx + (tr M + c),

with ‖x_i² − 1‖ = √2 and ‖x_i x_j‖ = ‖x_i‖ = 1, so the coordinates
(tr M + c, b, √2·M_ii, 2·M_ij for i<j) (:func:`hermite_coordinates`) turn the Gaussian L2 inner
product E[f g] into a Euclidean one. For a centred form (b = 0, c = −tr M) the norm is √2‖M‖_F.
Every measure below is Euclidean geometry on those coordinates, hence exact:

- :func:`projection_error`: the Gaussian-L2 distance of a function from the span of others
  (e.g. of a layer's read-out form from the span of the teacher's layer-1 units);
- :func:`span_error`: the root-mean-square sine of the principal angles between a reference span
  (the teacher's units) and a learner's span: 0 when the learner's span contains every teacher
  direction, 1 when it contains none. It depends on the spans only, so it is invariant to
  permutations, positive (or any nonzero) rescaling and any invertible mixing of either side's
  units — in particular to rotations of units that are read out only linearly;
- :func:`subspace_error`: the same on the *input* directions of a quadratic layer (the row spaces
  of the weight matrices in ℝ^d): invariant to rotations of the units' pre-activations, the
  symmetry of a layer read out through the sum of its units' squares, xᵀWᵀWx = xᵀ(RW)ᵀ(RW)x.

Which symmetry applies depends on how the target reads a layer: a layer read through a sum of
squares (the last layer, or a layer seen only through its readout) cannot be told from its
rotation, so its input subspace and its read-out form are what can be measured; a layer that a
higher layer reads unit by unit (the talk's step-2 target reads x1² and x2² separately) is
identified up to permutation and scale, so the span of its unit functions is measured.

For layers that read earlier layers (degree 4 and up) and for conv blocks, the feature-based
measures of :mod:`featviz.hierarchy.metrics` (held-out R² of linear maps, linear CKA) apply;
both are invariant to rotations and scale of the learner's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class QuadraticForms:
    """A batch of degree-2 polynomials f(x) = xᵀMx + bᵀx + c: ``quad`` (..., d, d) symmetric,
    ``lin`` (..., d), ``const`` (...)."""

    quad: torch.Tensor
    lin: torch.Tensor
    const: torch.Tensor

    @classmethod
    def pure(cls, quad: torch.Tensor) -> "QuadraticForms":
        """Forms xᵀMx with no linear or constant part."""
        quad = quad.double()
        return cls(quad, quad.new_zeros(quad.shape[:-1]), quad.new_zeros(quad.shape[:-2]))

    def readout(self, weights: torch.Tensor) -> "QuadraticForms":
        """Σ_j a_j f_j over the last batch axis, for readout weights a (..., m)."""
        a = weights.double()
        return QuadraticForms(torch.einsum("...m,...mij->...ij", a, self.quad),
                              torch.einsum("...m,...mi->...i", a, self.lin), (a * self.const).sum(-1))

    def coordinates(self, centred: bool = True) -> torch.Tensor:
        return hermite_coordinates(self.quad, self.lin, self.const, centred=centred)


def hermite_coordinates(quad: torch.Tensor, lin: torch.Tensor | None = None, const: torch.Tensor | None = None,
                        centred: bool = True) -> torch.Tensor:
    """Coordinates of f(x) = xᵀMx + bᵀx + c in the Gaussian-orthonormal Hermite basis:
    (..., d, d) -> (..., D) with D = d + d(d+1)/2 (+1 when not ``centred``), Euclidean norm =
    ‖f‖ in L2(N(0, I_d)) and Euclidean inner product = E[f g]. ``centred`` drops the mean
    (tr M + c), i.e. measures f − E f."""
    quad = quad.double()
    quad = (quad + quad.transpose(-1, -2)) / 2
    d = quad.shape[-1]
    rows, cols = torch.triu_indices(d, d, offset=1)
    parts = [math.sqrt(2) * torch.diagonal(quad, dim1=-2, dim2=-1), 2 * quad[..., rows, cols]]
    if lin is not None:
        parts.insert(0, lin.double())
    else:
        parts.insert(0, quad.new_zeros(quad.shape[:-1]))
    if not centred:
        mean = torch.diagonal(quad, dim1=-2, dim2=-1).sum(-1) + (0 if const is None else const.double())
        parts.insert(0, mean.unsqueeze(-1))
    return torch.cat(parts, -1)


def gaussian_l2(forms: QuadraticForms, centred: bool = True) -> torch.Tensor:
    """‖f‖ in L2(N(0, I)) of every form (exact; √2‖M‖_F for a centred pure quadratic form)."""
    return forms.coordinates(centred).norm(dim=-1)


def _orthonormal_rows(vectors: torch.Tensor, rtol: float = 1e-9) -> torch.Tensor:
    """An orthonormal basis (r, D) of the span of the rows of (m, D); rows below ``rtol`` of the
    largest singular value do not count (a unit of zero weight spans nothing)."""
    _, s, vh = torch.linalg.svd(vectors.double(), full_matrices=False)
    keep = s > rtol * s.max().clamp_min(1e-300)
    return vh[keep]


def projection_error(vector: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """‖v − P v‖ for v (..., D) and P the orthogonal projection onto the span of the rows of
    ``basis`` (k, D): with Hermite coordinates, the exact Gaussian-L2 distance of a function from
    the span of others."""
    q = _orthonormal_rows(basis)
    v = vector.double()
    return (v - (v @ q.T) @ q).norm(dim=-1)


def principal_sines(reference: torch.Tensor, learner: torch.Tensor) -> torch.Tensor:
    """Sines of the principal angles between the span of the rows of ``reference`` (k, D) and
    that of ``learner`` (m, D), one per reference direction (ascending angles)."""
    q_ref, q_learn = _orthonormal_rows(reference), _orthonormal_rows(learner)
    cosines = torch.linalg.svdvals(q_ref @ q_learn.T).clamp(0, 1) if len(q_learn) else q_ref.new_zeros(0)
    cosines = torch.cat([cosines, cosines.new_zeros(len(q_ref) - len(cosines))])
    return (1 - cosines ** 2).clamp_min(0).sqrt()


def span_error(reference: torch.Tensor, learner: torch.Tensor) -> float:
    """Root-mean-square sine of the principal angles from the reference span into the learner's:
    ‖(I − P_learner) Q_reference‖_F / √k. 0: the learner's span contains the reference span; 1: it is
    orthogonal to it. Width beyond the reference costs nothing (extra learner directions are free)."""
    sines = principal_sines(reference, learner)
    return float(sines.pow(2).mean().sqrt())


def subspace_error(reference_weight: torch.Tensor, learner_weight: torch.Tensor) -> float:
    """:func:`span_error` between the input subspaces (row spaces in ℝ^d) of two quadratic layers
    with pre-activation weights (k, d) and (m, d): invariant to rotations of either layer's units."""
    return span_error(reference_weight, learner_weight)


# --- forms of the project's networks and targets ------------------------------------------------------


def dense_layer1_forms(model: nn.Module) -> QuadraticForms:
    """The unit functions of block 1 of a :class:`~featviz.nets.QuadraticDenseMLP` (quadratic
    activation, reading x only), as evaluated in eval mode: with pre-activation w·x + β and the
    BatchNorm's running mean μ and variance v (when present), unit j is
    ((w_j·x + β_j)² − μ_j)/√(v_j + ε)."""
    block = model.block(1)
    w = block.linear.weight.detach().cpu().double()
    beta = block.linear.bias.detach().cpu().double() if block.linear.bias is not None else w.new_zeros(len(w))
    scale, shift = w.new_ones(len(w)), w.new_zeros(len(w))
    norm = getattr(block, "norm", None)
    if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.running_mean is not None:
        scale = (norm.running_var.detach().cpu().double() + norm.eps).rsqrt()
        shift = norm.running_mean.detach().cpu().double()
    quad = scale[:, None, None] * w[:, :, None] * w[:, None, :]
    return QuadraticForms(quad, 2 * (scale * beta)[:, None] * w, scale * (beta ** 2 - shift))


def target_layer1_forms(target: nn.Module) -> tuple[QuadraticForms, torch.Tensor, torch.Tensor]:
    """The teacher's layer-1 unit functions, their weights in the label (y = Σ_j a_j g_j + higher
    layers) and the layer's pre-activation directions (k, d). Knows the synthetic
    :class:`~featviz.nets.Teacher` (units ((w·x)² − mean)/std) and the talk's toy targets
    (units x1², x2²)."""
    normalizer = float(getattr(target, "normalizer", torch.ones(())))
    if hasattr(target, "w1_0"):
        w = target.w1_0.detach().cpu().double()
        std, mean = target.std1.detach().cpu().double(), target.mean1.detach().cpu().double()
        quad = w[:, :, None] * w[:, None, :] / std[:, None, None]
        forms = QuadraticForms(quad, w.new_zeros(w.shape), -mean / std)
    else:
        d = target.d
        w = torch.eye(2, d, dtype=torch.float64)
        forms = QuadraticForms.pure(w[:, :, None] * w[:, None, :])
    return forms, torch.full((len(w),), 1.0 / normalizer, dtype=torch.float64), w


EXACT = ("span_error", "subspace_error", "readout_error")


def supports_exact(model: nn.Module, target: nn.Module) -> bool:
    """Whether :func:`layer1_alignment` applies: a dense learner whose block 1 squares a linear map
    of x, and a teacher whose layer-1 forms are known (the synthetic teacher, the toy targets)."""
    arch = getattr(model, "arch", {})
    block = getattr(model, "block1", None)
    return (arch.get("act") == "quadratic" and isinstance(getattr(block, "linear", None), nn.Linear)
            and list(getattr(model, "sources", [[0]])[0]) == [0]
            and (hasattr(target, "w1_0") or getattr(target, "name", None) in ("step1", "step2")))


def layer1_alignment(model: nn.Module, target: nn.Module) -> dict[str, float]:
    """Exact, invariant layer-1 measures of a dense quadratic learner against a teacher:

    - ``span_error``: :func:`span_error` of the teacher's layer-1 unit functions in the span of
      the learner's (centred Hermite coordinates; invariant to permutations, rescaling and mixing
      of the learner's units);
    - ``subspace_error``: :func:`subspace_error` of the teacher's layer-1 input directions in the
      learner's (invariant to rotations of units);
    - ``readout_error``: the Gaussian-L2 distance of the learner's layer-1 read-out function
      Σ_j a_j h_j from the span of the teacher's layer-1 units, over the norm of the teacher's
      layer-1 read-out function (centred). Meaningful while layer 1 alone explains the label (the
      layerwise stage 1); after joint training higher layers that read x can cancel any part of it.
    """
    learned = dense_layer1_forms(model)
    teacher, teacher_readout, teacher_w = target_layer1_forms(target)
    learned_coords, teacher_coords = learned.coordinates(), teacher.coordinates()
    readout = model.readouts[0].weight.detach().cpu().double()[0]
    learned_out = learned.readout(readout).coordinates()
    teacher_norm = teacher.readout(teacher_readout).coordinates().norm()
    return {
        "span_error": span_error(teacher_coords, learned_coords),
        "subspace_error": subspace_error(teacher_w, model.block(1).linear.weight.detach().cpu().double()),
        "readout_error": float(projection_error(learned_out, teacher_coords) / teacher_norm),
    }


__all__ = ["EXACT", "QuadraticForms", "dense_layer1_forms", "gaussian_l2", "hermite_coordinates", "layer1_alignment",
           "principal_sines", "projection_error", "span_error", "subspace_error", "supports_exact", "target_layer1_forms"]
