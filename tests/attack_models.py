"""Model factories for ``featviz attack --model tests.attack_models:NAME`` in the tests."""

import torch
from torch import nn


def resnet18_digits() -> nn.Module:
    """A randomly initialised torchvision resnet18 for 1-channel images and 10 classes."""
    from torchvision.models import resnet18

    torch.manual_seed(0)  # the factory itself is deterministic, as a saved model would be
    model = resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def not_a_module():
    return "just a string"


def softmax_digits() -> nn.Module:
    """A linear classifier of 8x8 digits ending in a softmax (the probability-outputs flag)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Softmax(dim=1))
