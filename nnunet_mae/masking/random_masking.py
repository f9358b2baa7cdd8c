"""Per-sample random token masking, as `random_masking` in facebookresearch/mae (argsort of uniform noise)."""

from __future__ import annotations

import torch


def num_visible_tokens(num_tokens: int, mask_ratio: float) -> int:
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio={mask_ratio} must be in [0, 1); 0.75 is the MAE default.")
    return max(1, int(round(num_tokens * (1.0 - mask_ratio))))


def random_token_masking(batch_size: int, num_tokens: int, mask_ratio: float, *, device: torch.device | str = "cpu",
                         generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw an independent random mask per sample.

    Returns:
        ids_keep (B, L_keep) long: visible token indices (in shuffled order),
        ids_restore (B, L) long: inverse permutation, to put [visible, masked] back in token order,
        mask (B, L) float: 1 for masked tokens, 0 for visible ones.
    """
    keep = num_visible_tokens(num_tokens, mask_ratio)
    noise = torch.rand(batch_size, num_tokens, device=device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    mask = torch.ones(batch_size, num_tokens, device=device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_keep, ids_restore, mask
