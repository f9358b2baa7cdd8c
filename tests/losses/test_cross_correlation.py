import math

import numpy as np
import pytest
import torch

from nnunet_mae.architectures.projection import ProjectionHead
from nnunet_mae.losses.cross_correlation import cross_correlation_loss


def test_hand_computed_example():
    # z1 columns (1,-1,1,-1), (1,1,-1,-1): already standardised. z2 columns (1,-1,1,-1), (2,0,0,-2):
    # the second standardises to (r2,0,0,-r2). c = [[1, r2/2], [0, r2/2]] (B = 4, eps = 0), so
    # loss = (1-1)^2 + (1-r2/2)^2 + w * ((r2/2)^2 + 0^2) = (1 - r2/2)^2 + w/2.
    z1 = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    z2 = torch.tensor([[1.0, 2.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, -2.0]])
    for w in (0.005, 1.0):
        expected = (1 - math.sqrt(2) / 2) ** 2 + w / 2
        loss = cross_correlation_loss(z1, z2, off_diagonal_weight=w, eps=0.0)
        assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 5)), rng.normal(size=(8, 5)) * 3 + 1
    std = lambda z: (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)  # noqa: E731
    c = np.einsum("bi,bj->ij", std(a), std(b)) / 8
    off = c - np.diag(np.diag(c))
    expected = ((1 - np.diag(c)) ** 2).sum() + 0.005 * (off ** 2).sum()
    loss = cross_correlation_loss(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_identical_inputs_have_zero_diagonal_loss():
    z = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)) * 5 + 2
    loss_diag_only = cross_correlation_loss(z, z, off_diagonal_weight=0.0, eps=0.0)
    assert loss_diag_only.item() == pytest.approx(0.0, abs=1e-5)


def test_float32_under_autocast_and_gradient_flows():
    head = ProjectionHead(in_dim=6, hidden_dim=12, out_dim=4)
    tokens1 = torch.randn(5, 10, 6, requires_grad=True)  # (B, L, D) tokens are mean-pooled
    tokens2 = torch.randn(5, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = cross_correlation_loss(head(tokens1), head(tokens2))
    assert loss.dtype == torch.float32 and loss.ndim == 0
    loss.backward()
    assert tokens1.grad is not None and tokens1.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_shape_errors():
    with pytest.raises(ValueError, match="B >= 2"):
        cross_correlation_loss(torch.randn(4, 3), torch.randn(4, 2))
