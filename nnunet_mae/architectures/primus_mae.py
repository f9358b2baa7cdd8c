"""MAE pre-training network for PrimusV3 (dynamic-network-architectures), the network of nnU-Net's
`nnUNet_PrimusV3{S,B,M,L}_Trainer`.

`PrimusV3MAEMixin` on top of DNA's own PrimusV3 classes adds a light MAE decoder and a forward that encodes the
visible tokens only; the network is otherwise DNA's, so its state-dict keys are those of the network nnU-Net builds
(plus `mae_decoder.*`) and nnU-Net's strict `-pretrained_weights` loader accepts a pre-training checkpoint as is.

Differences from DNA's own `patch_drop_rate` path (broken with timm 1.0.22; its `restore_full_sequence` loops over
the batch in Python): the masks come from the caller (`masking/`), and
- the voxels of masked tokens are zeroed before the convolutional stem, so the stem, whose receptive field and
  skip connections span several tokens, cannot see them;
- after the stem and the absolute position embedding, only the visible tokens enter the Eva blocks, each with the
  rotary embedding of its own grid position (timm's `apply_keep_indices_nlc`, as Eva does after PatchDropout);
- DNA's `up_projection` (segmentation head) is carried, frozen and unused, so the checkpoint holds every key of
  the segmentation network (it is the fresh head the fine-tuning starts with).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from dynamic_network_architectures.architectures.primus import (PrimusV3, PrimusV3B, PrimusV3L, PrimusV3M,
                                                                 PrimusV3S)
from einops import rearrange
from timm.layers import apply_keep_indices_nlc

from nnunet_mae.architectures.mae import MAEDecoder, gather_tokens
from nnunet_mae.architectures.tokens import token_grid, unpatchify


class PrimusV3MAEMixin:
    """Adds `mae_decoder` and `forward(images, ids_keep, ids_restore[, mask])` to a PrimusV3 class.

    Extra keyword args: mae_decoder_dim, mae_decoder_depth, mae_decoder_heads (light decoder, 2 blocks by default
    as nnssl); the rest goes to the PrimusV3 class unchanged.
    """

    def __init__(self, *args, patch_embed_size: Sequence[int], input_shape: Sequence[int], mae_decoder_dim: int = 192,
                 mae_decoder_depth: int = 2, mae_decoder_heads: int = 6, **kwargs) -> None:
        super().__init__(*args, patch_embed_size=patch_embed_size, input_shape=input_shape, **kwargs)
        if self.register_tokens is not None:
            raise ValueError("PrimusV3 MAE pre-training supports num_register_tokens=0 only.")
        self.up_projection.requires_grad_(False)
        self.token_size = tuple(int(t) for t in patch_embed_size)
        self.grid = token_grid(input_shape, self.token_size)
        in_channels = self.down_projection.stem.blocks[0].conv1.conv.in_channels  # DNA's keys_to_in_proj[0]
        self.mae_decoder = MAEDecoder(embed_dim=self.embed_dim, decoder_dim=mae_decoder_dim, depth=mae_decoder_depth,
                                      num_heads=mae_decoder_heads, grid=self.grid,
                                      token_voxels=math.prod(self.token_size) * in_channels)

    def grid_of(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        return token_grid(spatial_shape, self.token_size)

    def encode_visible(self, images: torch.Tensor, ids_keep: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial), (B, L_keep), mask (B, L) with 1 = masked -> latent of the visible tokens (B, L_keep, D)."""
        grid = self.grid_of(images.shape[2:])
        visible = (1 - mask.to(images.dtype)).unsqueeze(-1).expand(-1, -1, math.prod(self.token_size))
        images = images * unpatchify(visible, self.token_size, grid, 1)  # masked tokens' voxels -> 0
        tokens = rearrange(self.down_projection(images), "b d g0 g1 g2 -> b (g0 g1 g2) d")  # (B, L, D)
        eva = self.eva
        if eva.pos_embed is not None:
            tokens = tokens + eva.pos_embed
        tokens = gather_tokens(tokens, ids_keep)  # (B, L_keep, D)
        rope = eva.rope.get_embed() if eva.rope is not None else None  # (L, rope_dim), C order over the grid
        if rope is not None:
            # (B, 1, L_keep, rope_dim): each kept token's own position, broadcast over the heads (timm 1.0.22's
            # attention expects a head axis once a batch axis is there; DNA's patch-drop path misses it)
            rope = apply_keep_indices_nlc(tokens, rope, ids_keep).unsqueeze(1)
        for block in eva.blocks:
            tokens = block(tokens, rope=rope)
        return eva.norm(tokens)

    def forward(self, images: torch.Tensor, ids_keep: torch.Tensor, ids_restore: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predictions of every token's voxels (B, L, prod(token) * C), in `tokens.patchify` order. Without
        `mask` (1 = masked), every token not in `ids_keep` is masked (the call of the ViT's MAE network)."""
        if mask is None:
            mask = torch.ones(ids_restore.shape, device=images.device).scatter_(1, ids_keep, 0.0)
        latent = self.encode_visible(images, ids_keep, mask)
        return self.mae_decoder(latent, ids_restore, self.grid_of(images.shape[2:]))


class PrimusV3MAE(PrimusV3MAEMixin, PrimusV3):
    """Any PrimusV3 (explicit embed_dim, eva_depth, ...; small ones for tests)."""


class PrimusV3SMAE(PrimusV3MAEMixin, PrimusV3S):
    pass


class PrimusV3BMAE(PrimusV3MAEMixin, PrimusV3B):
    pass


class PrimusV3MMAE(PrimusV3MAEMixin, PrimusV3M):
    pass


class PrimusV3LMAE(PrimusV3MAEMixin, PrimusV3L):
    pass
