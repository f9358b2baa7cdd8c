"""Plain ViT encoder for 2D/3D crops: conv stem (one token per `token_size` voxels), position
embedding, pre-norm transformer blocks, final LayerNorm.

Can run on a subset of tokens (`forward_tokens` after a gather), which is how MAE saves compute.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

from nnunet_mae.architectures.blocks import Block, init_transformer_weights
from nnunet_mae.architectures.pos_embed import resample_pos_embed, sincos_pos_embed
from nnunet_mae.architectures.tokens import as_spatial_tuple, token_grid

PosEmbedType = Literal["learned", "sincos"]


class ViTEncoder(nn.Module):
    """ViT encoder.

    Args:
        input_channels: image channels C.
        input_shape: the crop (nnU-Net's patch size), a multiple of `token_size` on each axis.
        token_size: voxels per token along each axis (int or one per axis).
        embed_dim, depth, num_heads, mlp_ratio: transformer size.
        drop_path_rate: stochastic depth, increasing linearly to this value over the blocks.
        pos_embed: "learned" (initialised sin-cos, trained) or "sincos" (fixed buffer).
    """

    def __init__(self, *, input_channels: int, input_shape: Sequence[int], token_size: int | Sequence[int],
                 embed_dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0, pos_embed: PosEmbedType = "learned") -> None:
        super().__init__()
        ndim = len(input_shape)
        if ndim not in (2, 3):
            raise ValueError(f"input_shape={tuple(input_shape)}: only 2D and 3D crops are supported.")
        if input_channels < 1:
            raise ValueError(f"input_channels={input_channels} must be >= 1.")
        if pos_embed not in ("learned", "sincos"):
            raise ValueError(f"pos_embed={pos_embed!r} must be 'learned' or 'sincos'.")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.token_size = as_spatial_tuple(token_size, ndim, "token_size")
        self.grid = token_grid(self.input_shape, self.token_size)
        self.embed_dim = embed_dim
        self.depth = depth

        conv = nn.Conv3d if ndim == 3 else nn.Conv2d
        self.patch_embed = conv(input_channels, embed_dim, kernel_size=self.token_size, stride=self.token_size)
        initial = sincos_pos_embed(self.grid, embed_dim)
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(initial)
        else:
            self.register_buffer("pos_embed", initial)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, drop_path=r) for r in rates)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

        self.apply(init_transformer_weights)
        # like MAE: initialise the stem as a linear layer on flattened tokens
        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)

    def grid_of(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        return token_grid(tuple(spatial_shape), self.token_size)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) -> tokens with position embedding (B, L, D)."""
        grid = self.grid_of(x.shape[2:])
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, L, D)
        pos = self.pos_embed if grid == self.grid else resample_pos_embed(self.pos_embed, self.grid, grid)
        return tokens + pos.to(tokens.dtype)

    def forward_tokens(self, tokens: torch.Tensor, return_blocks: Sequence[int] = ()
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the blocks on (B, L', D) tokens (all or a visible subset).

        Returns the normalised output (B, L', D) and the raw outputs of the blocks listed in
        `return_blocks` (0-based), in that order.
        """
        wanted = {b: i for i, b in enumerate(return_blocks)}
        hidden: list[torch.Tensor | None] = [None] * len(return_blocks)
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index in wanted:
                hidden[wanted[index]] = tokens
        return self.norm(tokens), hidden  # type: ignore[return-value]

    def forward(self, x: torch.Tensor, return_blocks: Sequence[int] = ()) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.forward_tokens(self.embed(x), return_blocks)
