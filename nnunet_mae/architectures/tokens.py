"""Voxel <-> token reshapes (einops, named axes) and token-grid geometry.

Token order: tokens are the token grid flattened in C order over the spatial axes as nnU-Net stores
them (axis 0 slowest), i.e. `(g0 g1 g2)`. Inside a token, voxels are flattened `(t0 t1 t2 c)`, as in
facebookresearch/mae `patchify` (channel last).
"""

from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange

TOKEN_ORDER = "C-order over spatial axes (g0 g1 g2); voxels inside a token as (t0 t1 t2 c)"


def as_spatial_tuple(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    """Expand an int to `ndim` axes or check a sequence has `ndim` entries."""
    if isinstance(value, int):
        return (value,) * ndim
    value = tuple(int(v) for v in value)
    if len(value) != ndim:
        raise ValueError(f"{name}={value} has {len(value)} axes but the data has {ndim} spatial axes; "
                         f"give one value per axis or a single int.")
    return value


def token_grid(input_shape: Sequence[int], token_size: Sequence[int]) -> tuple[int, ...]:
    """Number of tokens per axis; the crop must be a multiple of the token size on every axis."""
    if len(input_shape) != len(token_size):
        raise ValueError(f"input_shape={tuple(input_shape)} and token size {tuple(token_size)} differ in "
                         f"number of axes.")
    for axis, (s, t) in enumerate(zip(input_shape, token_size)):
        if t < 1 or s < t or s % t != 0:
            raise ValueError(
                f"Patch axis {axis} has {s} voxels, which is not a positive multiple of the token size {t} "
                f"(patch {tuple(input_shape)}, token size {tuple(token_size)}). Use a patch that is a multiple "
                f"of the token size (nnunet_mae trainers round the planned patch for you), or a smaller token.")
    return tuple(s // t for s, t in zip(input_shape, token_size))


def round_patch_to_tokens(patch_size: Sequence[int], token_size: Sequence[int]) -> tuple[int, ...]:
    """Nearest multiple of the token size per axis (halves round up), at least one token."""
    return tuple(max(t, int((s + t / 2) // t) * t) for s, t in zip(patch_size, token_size))


def patchify(images: torch.Tensor, token_size: Sequence[int]) -> torch.Tensor:
    """(B, C, *spatial) -> (B, L, prod(token_size) * C)."""
    if images.ndim == 5:
        t0, t1, t2 = token_size
        return rearrange(images, "b c (g0 t0) (g1 t1) (g2 t2) -> b (g0 g1 g2) (t0 t1 t2 c)", t0=t0, t1=t1, t2=t2)
    if images.ndim == 4:
        t0, t1 = token_size
        return rearrange(images, "b c (g0 t0) (g1 t1) -> b (g0 g1) (t0 t1 c)", t0=t0, t1=t1)
    raise ValueError(f"patchify expects (B, C, X, Y[, Z]) images, got shape {tuple(images.shape)}.")


def unpatchify(tokens: torch.Tensor, token_size: Sequence[int], grid: Sequence[int], channels: int) -> torch.Tensor:
    """(B, L, prod(token_size) * C) -> (B, C, *spatial); inverse of `patchify`."""
    if len(grid) == 3:
        (t0, t1, t2), (g0, g1, g2) = token_size, grid
        return rearrange(tokens, "b (g0 g1 g2) (t0 t1 t2 c) -> b c (g0 t0) (g1 t1) (g2 t2)",
                         g0=g0, g1=g1, g2=g2, t0=t0, t1=t1, t2=t2, c=channels)
    if len(grid) == 2:
        (t0, t1), (g0, g1) = token_size, grid
        return rearrange(tokens, "b (g0 g1) (t0 t1 c) -> b c (g0 t0) (g1 t1)", g0=g0, g1=g1, t0=t0, t1=t1,
                         c=channels)
    raise ValueError(f"unpatchify supports 2D and 3D token grids, got grid {tuple(grid)}.")


def tokens_to_feature_map(tokens: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """(B, L, D) -> (B, D, *grid)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)
