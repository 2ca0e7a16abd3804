"""featviz.hierarchy.alignment: exact Gaussian-L2 geometry of quadratic layers, and its invariances."""

from __future__ import annotations

import math

import torch

from featviz.devices import generator
from featviz.hierarchy.alignment import (QuadraticForms, dense_layer1_forms, gaussian_l2, hermite_coordinates,
                                         layer1_alignment, projection_error, span_error, subspace_error)
from featviz.nets import QuadraticDenseMLP, Teacher


def _orthogonal(k: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(k, k, generator=generator(seed), dtype=torch.float64))
    return q


def test_hermite_coordinates_give_the_gaussian_l2_norm_and_inner_product():
    gen = generator(0)
    d = 5
    forms = []
    for _ in range(2):
        m = torch.randn(d, d, generator=gen, dtype=torch.float64)
        forms.append((m + m.T, torch.randn(d, generator=gen, dtype=torch.float64), torch.tensor(0.7)))
    x = torch.randn(400_000, d, generator=gen, dtype=torch.float64)
    values = [((x @ m) * x).sum(1) + x @ b + c for m, b, c in forms]
    coords = [hermite_coordinates(m, b, c, centred=False) for m, b, c in forms]
    assert math.isclose(float(coords[0].norm()), float(values[0].pow(2).mean().sqrt()), rel_tol=0.01)
    assert math.isclose(float(coords[0] @ coords[1]), float((values[0] * values[1]).mean()), rel_tol=0.02)
    # a centred pure form has norm √2‖M‖_F
    m = forms[0][0]
    assert math.isclose(float(gaussian_l2(QuadraticForms.pure(m))), math.sqrt(2) * float(m.norm()), rel_tol=1e-12)


def test_a_rotated_teacher_layer_read_through_a_sum_of_squares_scores_perfect():
    teacher = Teacher(d=20, k=4, depth=3, seed=3, n_calibration=2000)
    w = teacher.w1_0.double()
    rotated = _orthogonal(4, 1) @ w
    # the read-out form Σ_j (w_j·x)² is unchanged, the input subspace too
    read = lambda v: QuadraticForms.pure(v[:, :, None] * v[:, None, :]).readout(torch.ones(4))  # noqa: E731
    diff = read(rotated).quad - read(w).quad
    assert float(gaussian_l2(QuadraticForms.pure(diff))) <= 1e-6
    assert subspace_error(w, rotated) <= 1e-6
    # wider learners that contain the teacher's directions lose nothing; a missing direction costs 1/√k rms
    assert subspace_error(w, torch.cat([rotated, torch.randn(6, 20, generator=generator(2), dtype=torch.float64)])) <= 1e-6
    assert math.isclose(subspace_error(w, rotated[:3]), math.sqrt(1 / 4), rel_tol=1e-9)


def test_learner_equal_to_the_teacher_up_to_permutation_and_rescaling_scores_perfect():
    teacher = Teacher(d=10, k=3, depth=2, seed=0, n_calibration=2000)
    model = QuadraticDenseMLP(10, [5, 4], connect="dense", norm="none")
    order = torch.tensor([2, 0, 1])
    scales = torch.tensor([0.5, 2.0, 3.0])
    with torch.no_grad():
        model.block(1).linear.weight.zero_()
        model.block(1).linear.bias.zero_()
        model.block(1).linear.weight[:3] = teacher.w1_0[order] * scales[:, None].sqrt()
        model.block(1).linear.weight[3:] = torch.randn(2, 10, generator=generator(5))  # extra units
        model.readouts[0].weight.zero_()
        # each unit read out so the sum is the teacher's layer-1 contribution Σ_j ((w_j·x)² − mean)/std / normalizer
        model.readouts[0].weight[0, :3] = 1 / (scales * teacher.std1[order] * teacher.normalizer)
    scores = layer1_alignment(model, teacher)
    assert scores["span_error"] <= 1e-6
    assert scores["subspace_error"] <= 1e-6
    assert scores["readout_error"] <= 1e-6


def test_a_known_alpha_contamination_is_recovered():
    d, alpha = 10, 0.137
    eye = torch.eye(d, dtype=torch.float64)
    teacher = torch.stack([eye[0].outer(eye[0]), eye[1].outer(eye[1])])
    teacher_coords = QuadraticForms.pure(teacher).coordinates()
    # stage-1 optimum of the talk's step-2 target: (1 + 6α)(x1² + x2²) + α(x3² + x4²)
    learned = torch.diag(torch.tensor([1 + 6 * alpha] * 2 + [alpha] * 2 + [0.0] * (d - 4), dtype=torch.float64))
    error = projection_error(QuadraticForms.pure(learned).coordinates(), teacher_coords) / teacher_coords.sum(0).norm()
    assert abs(float(error) - alpha) <= 0.01 * alpha
    # the same with a random rotation of the contaminating directions (x3, x4 -> any orthonormal pair outside e1, e2)
    q = _orthogonal(d - 2, 4)
    u = torch.cat([torch.zeros(2, 2, dtype=torch.float64), q[:, :2]])  # (d, 2)
    contaminated = learned.clone()
    contaminated[2:4, 2:4] = 0
    contaminated += alpha * u @ u.T
    error = projection_error(QuadraticForms.pure(contaminated).coordinates(), teacher_coords) / teacher_coords.sum(0).norm()
    assert abs(float(error) - alpha) <= 0.01 * alpha


def test_span_error_of_the_45_degree_saddle_is_one_over_root_two():
    eye = torch.eye(6, dtype=torch.float64)
    teacher = QuadraticForms.pure(torch.stack([eye[0].outer(eye[0]), eye[1].outer(eye[1])])).coordinates()
    plus, minus = (eye[0] + eye[1]) / math.sqrt(2), (eye[0] - eye[1]) / math.sqrt(2)
    saddle = QuadraticForms.pure(torch.stack([plus.outer(plus), minus.outer(minus)])).coordinates()
    assert math.isclose(span_error(teacher, saddle), math.sqrt(0.5), rel_tol=1e-9)
    assert span_error(teacher, teacher * torch.tensor([[3.0], [-0.5]], dtype=torch.float64)) <= 1e-12


def test_dense_layer1_forms_match_the_network_in_eval_mode():
    model = QuadraticDenseMLP(6, [4], connect="chain")
    with torch.no_grad():
        model.block(1).norm.running_mean.uniform_(0.5, 1.5)
        model.block(1).norm.running_var.uniform_(1.0, 3.0)
        model.block(1).linear.bias.normal_()
    model.eval()
    x = torch.randn(50, 6, generator=generator(1))
    forms = dense_layer1_forms(model)
    expected = model.features(x)[0].double()
    got = torch.einsum("ni,mij,nj->nm", x.double(), forms.quad, x.double()) + x.double() @ forms.lin.T + forms.const
    assert torch.allclose(got, expected, atol=1e-4)
