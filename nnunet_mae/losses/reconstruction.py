"""MSE on masked tokens, with optional per-token normalised targets (MAE's `norm_pix_loss`)."""

from __future__ import annotations

import torch


def reconstruction_targets(target_tokens: torch.Tensor, normalize: bool, eps: float = 1e-6) -> torch.Tensor:
    """(B, L, P) voxel tokens -> targets; with `normalize`, each token is standardised over its voxels."""
    if not normalize:
        return target_tokens
    mean = target_tokens.mean(dim=-1, keepdim=True)
    var = target_tokens.var(dim=-1, keepdim=True)
    return (target_tokens - mean) / (var + eps).sqrt()


def masked_reconstruction_loss(pred: torch.Tensor, target_tokens: torch.Tensor, mask: torch.Tensor,
                               normalize_targets: bool = False) -> torch.Tensor:
    """Mean squared error per token, averaged over masked tokens only.

    pred, target_tokens: (B, L, P); mask: (B, L), 1 = masked (counted), 0 = visible (ignored).
    """
    if pred.shape != target_tokens.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and targets {tuple(target_tokens.shape)} differ in shape.")
    target = reconstruction_targets(target_tokens.float(), normalize_targets)
    per_token = (pred.float() - target).pow(2).mean(dim=-1)  # (B, L)
    return (per_token * mask).sum() / mask.sum().clamp_min(1.0)
