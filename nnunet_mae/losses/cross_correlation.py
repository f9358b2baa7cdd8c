"""Barlow-Twins cross-correlation loss (Zbontar et al. 2021), as GMIM uses between its two masked branches.

Both branches' encoder tokens are pooled, projected by a `ProjectionHead` (architectures/projection.py), and
the loss pushes the (D, D) cross-correlation of the batch-standardised projections towards the identity.
"""

from __future__ import annotations

import torch


def _standardise(z: torch.Tensor, eps: float) -> torch.Tensor:
    """(B, D): zero mean, unit (biased) variance per feature over the batch."""
    return (z - z.mean(0)) / (z.var(0, correction=0) + eps).sqrt()


def cross_correlation_loss(z1: torch.Tensor, z2: torch.Tensor, *, off_diagonal_weight: float = 0.005,
                           eps: float = 1e-5) -> torch.Tensor:
    """sum_i (1 - c_ii)^2 + off_diagonal_weight * sum_{i != j} c_ij^2, with c = z1n.T @ z2n / B.

    z1, z2: (B, D); each feature is standardised over the batch (biased variance + eps, as BatchNorm1d
    without affine). Computed in float32, also under autocast.
    """
    if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError(f"z1 {tuple(z1.shape)} and z2 {tuple(z2.shape)} must both be (B, D) with B >= 2; "
                         f"pool the tokens and project them first.")
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z1n, z2n = (_standardise(z.float(), eps) for z in (z1, z2))  # (B, D) each
        c = z1n.T @ z2n / z1.shape[0]  # (D, D)
        diagonal = torch.diagonal(c)
        on_diag = (1.0 - diagonal).pow(2).sum()
        off_diag = c.pow(2).sum() - diagonal.pow(2).sum()
        return on_diag + off_diagonal_weight * off_diag
