"""Against collapse of the encoder's tokens: U-MAE's uniformity term (Zhang, Wang & Wang, "How Mask Matters",
NeurIPS 2022), on tokens.

Measured on Hippocampus (documentation/benchmarks.md, "Why MAE made the ViT-S encoder worse"): with the MAE loss
alone the ViT-S encoder's output tokens lose their variation (effective rank 209 -> 57 of 384 in 4,000 iterations)
and the probe falls from 0.37 to 0.03; with this term at weight 0.5 the rank stays high (361) and the probe at the
random-init level (0.35). The term controls the directions in which tokens differ, not how much they differ: the
variance over tokens still shrinks, which a standardising read-out (the probe's, a segmentation decoder's norms)
does not mind.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_uniformity_loss(tokens: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity between different tokens of the batch, after subtracting their mean.

    tokens: (B, L, D) or (N, D). ~1/D for tokens that differ in all directions, 1 when they all differ along one
    direction only (dimensional collapse)."""
    z = tokens.float().reshape(-1, tokens.shape[-1])
    if z.shape[0] < 2:
        raise ValueError(f"token_uniformity_loss needs at least 2 tokens, got {z.shape[0]}.")
    z = F.normalize(z - z.mean(0), dim=-1)
    n = z.shape[0]
    similarity = (z @ z.T).pow(2)
    return (similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1))
