"""ViT segmentation network = `ViTEncoder` + a segmentation decoder (UNETR-style or patch decoder)."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

from nnunet_mae.architectures.decoders import PatchDecoder, UNETRDecoder
from nnunet_mae.architectures.vit import PosEmbedType, ViTEncoder

DecoderType = Literal["unetr", "patch"]


def skip_block_indices(depth: int, num_skips: int) -> list[int]:
    """Blocks (0-based) whose outputs feed the decoder: evenly spaced, shallow to deep, then the last.

    depth 12 with 3 skips gives blocks 3, 6, 9 (1-based) as in UNETR, then 12.
    """
    if num_skips >= depth:
        raise ValueError(f"The decoder needs {num_skips} intermediate skips but the encoder has only {depth} "
                         f"blocks; use a deeper encoder or a smaller token size.")
    return [depth * (k + 1) // (num_skips + 1) - 1 for k in range(num_skips)] + [depth - 1]


class ViTSegmentationNetwork(nn.Module):
    """ViT encoder with a convolutional segmentation decoder.

    Args:
        input_channels: image channels C.
        num_classes: output channels (nnU-Net's `num_segmentation_heads`).
        input_shape: the crop (nnU-Net patch size), a multiple of `token_size`.
        token_size: voxels per token (int or per axis; powers of two, 8 or 16 typical).
        embed_dim, depth, num_heads, mlp_ratio, drop_path_rate, pos_embed: see `ViTEncoder`.
        decoder: "unetr" (skips from intermediate blocks) or "patch" (light transposed-conv decoder).
        decoder_feature_size: UNETR channels at full resolution.
    """

    def __init__(self, *, input_channels: int, num_classes: int, input_shape: Sequence[int],
                 token_size: int | Sequence[int] = 8, embed_dim: int = 384, depth: int = 12, num_heads: int = 6,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.0, pos_embed: PosEmbedType = "learned",
                 decoder: DecoderType = "unetr", decoder_feature_size: int = 16) -> None:
        super().__init__()
        # the encoder's keys, declared as dynamic-network-architectures' networks declare theirs
        self.key_to_encoder, self.key_to_stem, self.key_to_lpe = "encoder", "encoder.patch_embed", "encoder.pos_embed"
        self.keys_to_in_proj = ("encoder.patch_embed",)
        self.encoder = ViTEncoder(input_channels=input_channels, input_shape=input_shape, token_size=token_size,
                                  embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                                  drop_path_rate=drop_path_rate, pos_embed=pos_embed)
        token = self.encoder.token_size
        if decoder == "unetr":
            self.decoder = UNETRDecoder(input_channels=input_channels, embed_dim=embed_dim, token_size=token,
                                        num_classes=num_classes, feature_size=decoder_feature_size)
        elif decoder == "patch":
            self.decoder = PatchDecoder(embed_dim=embed_dim, token_size=token, num_classes=num_classes)
        else:
            raise ValueError(f"decoder={decoder!r} must be 'unetr' or 'patch'.")
        self.return_blocks = skip_block_indices(depth, self.decoder.num_skips)[:-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.encoder.grid_of(x.shape[2:])
        final, hidden = self.encoder(x, self.return_blocks)
        return self.decoder(x, [*hidden, final], grid)
