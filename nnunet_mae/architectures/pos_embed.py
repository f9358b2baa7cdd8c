"""Position embeddings: fixed N-d sin-cos, and resampling to another token grid.

sin-cos follows facebookresearch/mae `util/pos_embed.py` generalised to N axes: the embedding dim is
split evenly across axes (remainder zero-padded). Resampling follows timm `resample_abs_pos_embed`
(interpolate on the grid), here without prefix tokens and with trilinear interpolation for 3D.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def sincos_pos_embed(grid: Sequence[int], dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed sin-cos embedding of shape (1, prod(grid), dim), tokens in C order over `grid`."""
    ndim = len(grid)
    per_axis = (dim // ndim) // 2 * 2  # even number of channels per axis
    if per_axis == 0:
        raise ValueError(f"embed_dim={dim} is too small for a {ndim}-D sin-cos position embedding "
                         f"(needs at least {2 * ndim}).")
    omega = 1.0 / temperature ** (torch.arange(per_axis // 2, dtype=torch.float64) / (per_axis // 2))
    coords = torch.meshgrid(*[torch.arange(g, dtype=torch.float64) for g in grid], indexing="ij")
    parts = []
    for c in coords:
        angles = c.reshape(-1, 1) * omega.reshape(1, -1)  # (L, per_axis/2)
        parts += [torch.sin(angles), torch.cos(angles)]
    emb = torch.cat(parts, dim=1)
    if emb.shape[1] < dim:
        emb = F.pad(emb, (0, dim - emb.shape[1]))
    return emb.float().unsqueeze(0)


def resample_pos_embed(pos_embed: torch.Tensor, old_grid: Sequence[int], new_grid: Sequence[int]) -> torch.Tensor:
    """Interpolate a (1, prod(old_grid), D) embedding to (1, prod(new_grid), D)."""
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    if pos_embed.shape[1] != int(torch.tensor(old_grid).prod()):
        raise ValueError(f"pos_embed has {pos_embed.shape[1]} tokens but old grid {old_grid} has "
                         f"{int(torch.tensor(old_grid).prod())}.")
    if len(old_grid) != len(new_grid):
        raise ValueError(f"Cannot resample a {len(old_grid)}-D position embedding to a {len(new_grid)}-D grid "
                         f"({old_grid} -> {new_grid}): pre-train and fine-tune with the same dimensionality.")
    if old_grid == new_grid:
        return pos_embed
    dim = pos_embed.shape[-1]
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(old_grid)]
    orig_dtype = pos_embed.dtype
    grid_embed = pos_embed.float().transpose(1, 2).reshape(1, dim, *old_grid)
    grid_embed = F.interpolate(grid_embed, size=new_grid, mode=mode, align_corners=False)
    return grid_embed.reshape(1, dim, -1).transpose(1, 2).to(orig_dtype)
