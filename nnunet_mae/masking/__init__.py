"""Token masking: random (MAE) and entropy-adaptive grid masking (GMIM). Pure, vectorised, seedable."""

from nnunet_mae.masking.grid_masking import grid_token_mask, hierarchical_ratios, hierarchical_remask
from nnunet_mae.masking.random_masking import random_token_masking

__all__ = ["grid_token_mask", "hierarchical_ratios", "hierarchical_remask", "random_token_masking"]
