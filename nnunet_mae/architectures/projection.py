"""The projector of GMIM's Siamese branches (Barlow-Twins style): pooled tokens -> a small embedding, on which
`losses.cross_correlation_loss` works."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Linear-BN-ReLU-Linear projector: (B, in_dim) pooled tokens -> (B, out_dim); (B, L, in_dim) is mean-pooled."""

    def __init__(self, *, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
                                 nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim == 3:
            tokens = tokens.mean(dim=1)  # (B, L, D) -> (B, D)
        return self.net(tokens)
