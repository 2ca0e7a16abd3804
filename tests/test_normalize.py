"""featviz.normalize: one explicit input normalization for visualization and attacks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from featviz.errors import SpecError
from featviz.normalize import Normalize, Normalized


def test_normalize_and_normalized_agree():
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    expected = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(Normalize(mean, std)(x), expected)
    wrapped = Normalized(nn.Identity(), mean, std)
    assert torch.allclose(wrapped(x), expected)
    assert sorted(wrapped.state_dict()) == ["mean", "std"]


def test_old_import_paths_still_work():
    from featviz.attacks import Normalized as from_attacks
    from featviz.attacks.model import Normalized as from_attack_model

    assert from_attacks is Normalized and from_attack_model is Normalized


@pytest.mark.parametrize("mean,std", [([0.5], [0.2, 0.2]), ([0.5], [0.0]), ([], [])])
def test_normalize_rejects_bad_statistics(mean, std):
    with pytest.raises(SpecError):
        Normalize(mean, std)
