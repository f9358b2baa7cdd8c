"""Entropy-adaptive grid masking and hierarchical re-masking after GMIM (Qi et al., Comput. Biol. Med. 2024).

GMIM splits a 128^3 crop into G^3 grid cells (G in {4, 8, 16}), scores each G by
G^-0.1 * std(entropy) / mean(entropy) over the cells' intensity entropies, picks the best G, and masks
each cell with a ratio that grows with its entropy; deeper encoder stages re-mask part of what is left.

Translation to a plain ViT token grid (tokens in C order over the grid, see `architectures.tokens`):
- cells are groups of whole tokens: along an axis with n tokens and G cells, token i is in cell
  floor(i * G / n), so cells may differ in size by one token when n is not a multiple of G;
- candidate cell counts per axis are min(G, n) for G in (2, 4, 8, 16), deduplicated, so any 2D or
  3D grid works, including non-cubic ones like (5, 7, 5); for non-cubic grids G in the score is the
  geometric mean of the per-axis cell counts;
- the grid is chosen once per batch (the score is averaged over samples), so all samples share one
  cell layout; entropies, ratios and mask positions are per sample;
- a cell with ratio r and s tokens gets floor(r * s + 0.5) masked tokens at random positions, so the
  number of masked tokens per sample can differ a little between samples when cells differ in size;
- "hierarchical" masking: with a given probability per sample, a further fraction of the still visible
  tokens is masked before deeper blocks, the fraction multiplied by a decay per level (0.5: 0.5, 0.25, 0.125, ...).

Entropy: natural-log Shannon entropy of a `bins`-bin histogram of the cell's voxels (all channels pooled),
the bins spanning each sample's own [min, max]. Everything is vectorised and runs on the input's device.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from nnunet_mae.architectures.tokens import patchify, token_grid

GRID_SIZES = (2, 4, 8, 16)
GRID_SCORE_EXPONENT = -0.1  # GMIM's penalty on finer grids: score = G^-0.1 * std(H) / mean(H)


MIN_TOKENS_PER_CELL_AXIS = 2


def candidate_cell_counts(grid: Sequence[int]) -> list[tuple[int, ...]]:
    """Cells per axis for G in (2, 4, 8, 16), coarse to fine, no duplicates.

    Each cell keeps at least `MIN_TOKENS_PER_CELL_AXIS` tokens per axis (where the axis has that many):
    with one token per cell the entropy ranking alone would decide the mask and it would stop being random
    (in the paper every cell holds at least 4^3 tokens).
    """
    grid = tuple(int(n) for n in grid)
    if len(grid) not in (2, 3) or min(grid) < 1:
        raise ValueError(f"grid={grid} must be a 2D or 3D token grid with at least 1 token per axis.")
    return list(dict.fromkeys(tuple(max(1, min(g, n // MIN_TOKENS_PER_CELL_AXIS)) for n in grid)
                              for g in GRID_SIZES))


def _check_cells(grid: Sequence[int], cells: Sequence[int]) -> None:
    if len(cells) != len(grid) or any(not 1 <= c <= n for c, n in zip(cells, grid)):
        raise ValueError(f"cells={tuple(cells)} must give 1..n cells for each axis of the token grid "
                         f"{tuple(grid)}; use `candidate_cell_counts(grid)` for valid choices.")


def cell_index_map(grid: Sequence[int], cells: Sequence[int], *,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """(L,) long: the cell id of every token (tokens and cells both in C order over their grids)."""
    _check_cells(grid, cells)
    ids = torch.zeros((), dtype=torch.long, device=device)
    for axis, (n, g) in enumerate(zip(grid, cells)):
        along = torch.arange(n, device=device) * g // n  # (n,) cell of token i along this axis
        shape = [1] * len(grid)
        shape[axis] = n
        ids = ids * g + along.view(shape)  # broadcasts up to (*grid)
    return ids.reshape(-1)


def _token_histograms(images: torch.Tensor, token_size: Sequence[int], grid: Sequence[int],
                      bins: int) -> torch.Tensor:
    """(B, C, *spatial) -> (B, L, bins) long voxel counts per token, bins over each sample's [min, max]."""
    if bins < 2:
        raise ValueError(f"bins={bins} must be >= 2 for a meaningful entropy; 32 is the default.")
    if token_grid(images.shape[2:], token_size) != tuple(grid):
        raise ValueError(f"images {tuple(images.shape)} with token size {tuple(token_size)} give another token grid "
                         f"than grid={tuple(grid)}; pass token_grid(images.shape[2:], token_size).")
    voxels = patchify(images.detach().float(), token_size)  # (B, L, P*C): channels pooled per token
    b, num_tokens, per_token = voxels.shape
    flat = voxels.reshape(b, -1)
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)  # (B, 1)
    scale = bins / (high - low).clamp_min(torch.finfo(flat.dtype).tiny)
    bin_ids = ((flat - low) * scale).long().clamp_(0, bins - 1)  # (B, L*P*C); constant sample -> bin 0
    token_ids = torch.arange(num_tokens, device=flat.device).repeat_interleave(per_token)  # (L*P*C,)
    counts = torch.zeros(b, num_tokens * bins, dtype=torch.long, device=flat.device)
    ones = torch.ones((), dtype=torch.long, device=flat.device).expand_as(bin_ids)  # no (B, L*P*C) allocation
    counts.scatter_add_(1, token_ids * bins + bin_ids, ones)
    return counts.view(b, num_tokens, bins)


def _entropy_from_token_histograms(hist: torch.Tensor, grid: Sequence[int], cells: Sequence[int]) -> torch.Tensor:
    """(B, L, bins) token counts -> (B, N) natural-log entropy of each cell's pooled histogram."""
    b, _, bins = hist.shape
    num_cells = math.prod(cells)
    cell_of_token = cell_index_map(grid, cells, device=hist.device)  # (L,)
    index = (cell_of_token[:, None] * bins + torch.arange(bins, device=hist.device)).reshape(1, -1)  # (1, L*bins)
    cell_hist = torch.zeros(b, num_cells * bins, dtype=torch.long, device=hist.device)
    cell_hist.scatter_add_(1, index.expand(b, -1), hist.reshape(b, -1))
    p = cell_hist.view(b, num_cells, bins).double()
    p = p / p.sum(-1, keepdim=True)
    return -torch.special.xlogy(p, p).sum(-1).float()  # (B, N); 0 log 0 = 0


def _grid_scores(hist: torch.Tensor, grid: Sequence[int],
                 candidates: list[tuple[int, ...]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(K,) batch-mean GMIM score of each candidate, and each candidate's (B, N_k) entropies."""
    scores, entropies = [], []
    for cells in candidates:  # at most 4 candidates
        entropy = _entropy_from_token_histograms(hist, grid, cells)  # (B, N)
        cv = entropy.std(1, correction=0) / entropy.mean(1).clamp_min(1e-12)  # (B,); all-constant -> 0
        g = math.prod(cells) ** (1.0 / len(cells))  # geometric mean of cells per axis
        scores.append(g ** GRID_SCORE_EXPONENT * cv.mean())
        entropies.append(entropy)
    return torch.stack(scores), entropies


def entropy_mask_ratios(entropy: torch.Tensor, *, base_ratio: float = 0.5, spread: float = 0.3) -> torch.Tensor:
    """(B, N) -> (B, N) ratios linear in each cell's entropy rank, base*(1-spread) ... base*(1+spread).

    Higher entropy -> higher ratio; equal entropies are ranked by cell index. One cell gets `base_ratio`.
    """
    if not 0.0 < base_ratio < 1.0:
        raise ValueError(f"base_ratio={base_ratio} must be in (0, 1); GMIM uses 0.5.")
    if not 0.0 <= spread <= 1.0 or base_ratio * (1.0 + spread) > 1.0:
        raise ValueError(f"spread={spread} must be in [0, 1] with base_ratio * (1 + spread) <= 1 "
                         f"(base_ratio={base_ratio}); lower the spread, e.g. 0.3 for ratios 0.35..0.65.")
    if entropy.ndim != 2:
        raise ValueError(f"entropy of shape {tuple(entropy.shape)} must be (B, num_cells).")
    num_cells = entropy.shape[1]
    rank = entropy.argsort(dim=1, stable=True).argsort(1).to(torch.float32)  # (B, N), 0 = lowest entropy
    position = rank / (num_cells - 1) if num_cells > 1 else torch.full_like(rank, 0.5)  # in [0, 1]
    return base_ratio * (1.0 - spread + 2.0 * spread * position)


def grid_token_mask(images: torch.Tensor, token_size: Sequence[int], *, base_ratio: float = 0.5,
                    spread: float = 0.3, bins: int = 32, cells: Sequence[int] | None = None,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """GMIM entropy-adaptive grid mask over the token grid of `images` (B, C, *spatial).

    `cells` fixes the cells per axis; by default the batch's grid is the candidate (`candidate_cell_counts`) that
    maximises G^-0.1 * std(H) / mean(H), averaged over the batch (ties -> coarser grid), so all samples share a
    cell layout. In each cell of
    s tokens with ratio r, floor(r * s + 0.5) tokens are masked at uniformly random positions, per sample.

    Returns:
        mask (B, L) float: 1 = masked, 0 = visible (as `random_token_masking`),
        info: cells (tuple), cell_index (L,) long, cell_entropy (B, N), cell_ratios (B, N),
        cell_mask_counts (B, N) long.
    """
    grid = token_grid(images.shape[2:], token_size)
    hist = _token_histograms(images, token_size, grid, bins)  # (B, L, bins)
    if cells is None:
        candidates = candidate_cell_counts(grid)
        scores, entropies = _grid_scores(hist, grid, candidates)
        best = int(scores.argmax())
        cells, entropy = candidates[best], entropies[best]
    else:
        cells = tuple(int(c) for c in cells)
        _check_cells(grid, cells)
        entropy = _entropy_from_token_histograms(hist, grid, cells)
    ratios = entropy_mask_ratios(entropy, base_ratio=base_ratio, spread=spread)  # (B, N)

    b, num_tokens = hist.shape[:2]
    cell_of_token = cell_index_map(grid, cells, device=images.device)  # (L,)
    sizes = torch.bincount(cell_of_token, minlength=ratios.shape[1])  # (N,) tokens per cell
    counts = torch.floor(ratios * sizes + 0.5).long()  # (B, N) tokens to mask per cell
    # Random order inside each cell: shuffle, then stable-sort by cell, so tokens are grouped by cell.
    shuffle = torch.rand(b, num_tokens, device=images.device, generator=generator).argsort(1)  # (B, L)
    order = shuffle.gather(1, cell_of_token[shuffle].argsort(dim=1, stable=True))  # (B, L) grouped by cell
    position = order.argsort(1)  # (B, L) position of each token in `order`
    starts = (sizes.cumsum(0) - sizes)[cell_of_token]  # (L,) first position of each token's cell
    rank_in_cell = position - starts  # (B, L), a random permutation of 0..s-1 inside each cell
    mask = (rank_in_cell < counts.gather(1, cell_of_token.expand(b, -1))).float()
    info = {"cells": cells, "cell_index": cell_of_token, "cell_entropy": entropy, "cell_ratios": ratios,
            "cell_mask_counts": counts}
    return mask, info


def hierarchical_ratios(base_ratio: float, levels: int, decay: float = 0.5) -> list[float]:
    """Re-masking ratio per level, multiplied by `decay` each time: 0.5, decay 0.5 -> [0.5, 0.25, 0.125, ...]."""
    if not 0.0 <= base_ratio < 1.0 or levels < 0 or not 0.0 < decay <= 1.0:
        raise ValueError(f"base_ratio={base_ratio} must be in [0, 1), levels={levels} >= 0 and decay={decay} in "
                         f"(0, 1]; e.g. 0.5, 3 and 0.5.")
    return [base_ratio * decay ** level for level in range(levels)]


def hierarchical_remask(mask: torch.Tensor, ratio: float, probability: float, *,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, L) mask -> (B, L) superset: per sample with `probability`, also mask floor(ratio * visible + 0.5)
    of the visible tokens at fresh random positions. Same dtype as `mask` (1 / True = masked).
    """
    if mask.ndim != 2:
        raise ValueError(f"mask of shape {tuple(mask.shape)} must be (B, L).")
    if not 0.0 <= ratio < 1.0 or not 0.0 <= probability <= 1.0:
        raise ValueError(f"ratio={ratio} must be in [0, 1) and probability={probability} in [0, 1]; "
                         f"use `hierarchical_ratios` for the per-level ratios.")
    masked = mask.bool()
    apply = torch.rand(mask.shape[0], device=mask.device, generator=generator) < probability  # (B,)
    visible = (~masked).sum(1)  # (B,)
    extra = torch.floor(visible * ratio + 0.5).long() * apply  # (B,) tokens to add
    noise = torch.rand(mask.shape, device=mask.device, generator=generator).masked_fill(masked, 2.0)
    rank = noise.argsort(1).argsort(1)  # (B, L): visible tokens take ranks 0..visible-1 in random order
    return (masked | (rank < extra[:, None])).to(mask.dtype)
