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


def small_digits(n_test: int):
    """8×8 digits with the first ``n_test`` test images (the attack tests' data)."""
    from featviz.data import load_digits

    data = load_digits(image_size=8)
    data.x_test, data.y_test = data.x_test[:n_test], data.y_test[:n_test]
    return data


def trained_tiny(data) -> nn.Module:
    """A tiny quadratic conv net trained 6 epochs on 8×8 digits (~80% test accuracy, ~1 s), in eval mode."""
    from featviz.devices import seeded
    from featviz.nets import QuadraticDenseConvNet
    from featviz.train import TrainConfig, train_model

    with seeded(0):
        model = QuadraticDenseConvNet(1, 10, widths=(6, 8), image_size=8)
    train_model(model, data, TrainConfig(epochs=6, batch_size=64, lr=1e-2), progress=False)
    return model.eval()


def not_a_module():
    return "just a string"


def softmax_digits() -> nn.Module:
    """A linear classifier of 8x8 digits ending in a softmax (the probability-outputs flag)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Softmax(dim=1))
