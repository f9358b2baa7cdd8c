"""Masked autoencoder on the ViT (facebookresearch/mae `models_mae.py`, 3D/2D, no cls token).

The encoder runs on the visible tokens only; a light transformer decoder with a learnable mask token
predicts the voxels of every token. `MAEPretrainingNetwork` subclasses the segmentation network so
that the pre-training checkpoint holds the same `encoder.*` and `decoder.*` keys as the fine-tuning
network: nnU-Net's strict `-pretrained_weights` loader then finds every key it needs. The segmentation
decoder is frozen and unused during pre-training (it is the "fresh decoder" the fine-tuning starts with).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from nnunet_mae.architectures.blocks import Block, init_transformer_weights
from nnunet_mae.architectures.pos_embed import resample_pos_embed, sincos_pos_embed
from nnunet_mae.architectures.segmentation import ViTSegmentationNetwork


def gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """tokens (B, L, D), ids (B, K) -> (B, K, D)."""
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


class MAEDecoder(nn.Module):
    """Embed visible latents, insert mask tokens, unshuffle, add fixed sin-cos positions, transformer, predict
    voxels."""

    def __init__(self, *, embed_dim: int, decoder_dim: int, depth: int, num_heads: int, grid: Sequence[int],
                 token_voxels: int) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer("pos_embed", sincos_pos_embed(self.grid, decoder_dim))
        self.blocks = nn.ModuleList(Block(dim=decoder_dim, num_heads=num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.pred = nn.Linear(decoder_dim, token_voxels)
        self.apply(init_transformer_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
        """latent (B, L_keep, D), ids_restore (B, L) -> predictions (B, L, token_voxels)."""
        x = self.embed(latent)
        b, keep, d = x.shape
        mask_tokens = self.mask_token.to(x.dtype).expand(b, ids_restore.shape[1] - keep, d)
        x = gather_tokens(torch.cat([x, mask_tokens], dim=1), ids_restore)  # (B, L, Dd), original order
        pos = self.pos_embed if tuple(grid) == self.grid else resample_pos_embed(self.pos_embed, self.grid, grid)
        x = x + pos.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x))


class MAEPretrainingNetwork(ViTSegmentationNetwork):
    """Segmentation network plus an MAE decoder; `forward(images, ids_keep, ids_restore)` reconstructs tokens.

    Extra args: mae_decoder_dim, mae_decoder_depth, mae_decoder_heads (light decoder: 2 blocks by default,
    as nnssl). The `num_classes` head and segmentation decoder are carried, frozen, for weight transfer.
    """

    def __init__(self, *, mae_decoder_dim: int = 192, mae_decoder_depth: int = 2, mae_decoder_heads: int = 6,
                 **segmentation_kwargs) -> None:
        super().__init__(**segmentation_kwargs)
        self.decoder.requires_grad_(False)
        encoder = self.encoder
        token_voxels = math.prod(encoder.token_size) * encoder.patch_embed.in_channels
        self.mae_decoder = MAEDecoder(embed_dim=encoder.embed_dim, decoder_dim=mae_decoder_dim,
                                      depth=mae_decoder_depth, num_heads=mae_decoder_heads, grid=encoder.grid,
                                      token_voxels=token_voxels)

    def encode_visible(self, images: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Encoder on the visible tokens only: (B, C, *spatial), (B, L_keep) -> (B, L_keep, D)."""
        tokens = gather_tokens(self.encoder.embed(images), ids_keep)
        return self.encoder.forward_tokens(tokens)[0]

    def forward(self, images: torch.Tensor, ids_keep: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        grid = self.encoder.grid_of(images.shape[2:])
        return self.mae_decoder(self.encode_visible(images, ids_keep), ids_restore, grid)
