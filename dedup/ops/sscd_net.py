"""SSCD's architecture in torchvision terms (its ``TV_RESNET50`` variant): a ResNet-50 trunk, GeM pooling
(p = 3) and a 2048 -> 512 projection, L2-normalised. Used for ``--weights random`` (throughput runs) and by
the tests, which script it to stand in for Meta's TorchScript file; Meta's own file is loaded as it is.

Imports torch at import time: import this module only where torch is needed.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GeM(nn.Module):
    """Generalised-mean pooling over the spatial dimensions: (mean of x^p)^(1/p), p = 3."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p, self.eps = p, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3), keepdim=True).pow(1.0 / self.p)


class SSCDNet(nn.Module):
    """Normalised float NCHW in, L2-normalised 512-d descriptors out (the contract of Meta's TorchScript)."""

    def __init__(self, dims: int = 512):
        super().__init__()
        from torchvision.models import resnet50

        self.backbone = resnet50(weights=None, num_classes=dims)
        self.backbone.avgpool = GeM()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone(x), dim=1)


def random_sscd(seed: int = 0) -> SSCDNet:
    """A seeded random SSCD-shaped network (its descriptors mean nothing)."""
    torch.manual_seed(seed)
    return SSCDNet().eval()


def scripted(module: nn.Module) -> torch.jit.ScriptModule:
    return torch.jit.script(module.eval())
