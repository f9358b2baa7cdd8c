"""Segmentation decoders from ViT tokens back to voxels.

- `UNETRDecoder`: UNETR-style (Hatamizadeh et al. 2022; SelfMedMAE's fine-tuning network): skips from
  intermediate blocks are upsampled by transposed convs to their resolution level and merged
  bottom-up, plus a conv branch on the input image at full resolution.
  Differences from MONAI UNETR: any power-of-two token size per axis (levels = log2 of the largest
  token size; axes with smaller tokens stop upsampling early), 2D and 3D, skip projections of one
  transposed conv + norm + activation per level.
- `PatchDecoder`: Primus-style light decoder (transposed convs with channel LayerNorm + GELU).
Both end in a 1x1 conv named `seg_layers`, which nnU-Net's `-pretrained_weights` loader skips.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from nnunet_mae.architectures.tokens import tokens_to_feature_map


def upsampling_strides(token_size: Sequence[int]) -> list[tuple[int, ...]]:
    """Per-level strides from full resolution (level 0) to the token grid; their product is the token size."""
    for t in token_size:
        if t < 1 or (t & (t - 1)) != 0:
            raise ValueError(f"token size {tuple(token_size)}: every axis must be a power of two (e.g. 8 or 16) "
                             f"for the convolutional decoders.")
    levels = int(math.log2(max(token_size)))
    if levels == 0:
        raise ValueError(f"token size {tuple(token_size)} is 1 on every axis; the decoders need at least 2.")
    return [tuple(2 if t >> level >= 2 else 1 for t in token_size) for level in range(levels)]


class LayerNormNd(nn.Module):
    """LayerNorm over the channel axis of (B, C, *spatial)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class _OneDNNInferenceConv:
    """Mixin for nn.Conv2d / nn.Conv3d: in CPU float32 inference (no autograd), call oneDNN directly.

    For batch-1 tiles of small patches PyTorch's CPU heuristic picks its reference kernel (`slow_conv3d`), several
    times slower than oneDNN (a 3x3x3 conv of 16 channels on 24x32x32: 78 ms vs 10 ms on this project's CPU), which
    made sliding-window inference of the UNETR-style decoder slow. Same weights, same results within float
    rounding; training and other devices take the normal path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dtype == torch.float32 and self.weight.dtype == torch.float32
                and not torch.is_grad_enabled() and self.padding_mode == "zeros" and not isinstance(self.padding, str)
                and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
            return torch.ops.aten.mkldnn_convolution(x.contiguous(), self.weight, self.bias, list(self.padding),
                                                     list(self.stride), list(self.dilation), self.groups)
        return super().forward(x)


class Conv3d(_OneDNNInferenceConv, nn.Conv3d):
    pass


class Conv2d(_OneDNNInferenceConv, nn.Conv2d):
    pass


def _ops(ndim: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    if ndim == 3:
        return Conv3d, nn.ConvTranspose3d, nn.InstanceNorm3d
    return Conv2d, nn.ConvTranspose2d, nn.InstanceNorm2d


class ConvBlock(nn.Sequential):
    """Two 3x3(x3) convs, each with instance norm and LeakyReLU (nnU-Net's conv block)."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int) -> None:
        conv, _, norm = _ops(ndim)
        super().__init__(
            conv(in_channels, out_channels, 3, padding=1), norm(out_channels, affine=True), nn.LeakyReLU(inplace=True),
            conv(out_channels, out_channels, 3, padding=1), norm(out_channels, affine=True), nn.LeakyReLU(inplace=True),
        )


class UpsampleBlock(nn.Sequential):
    """Transposed conv (kernel = stride) + instance norm + LeakyReLU."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, stride: Sequence[int]) -> None:
        _, tconv, norm = _ops(ndim)
        super().__init__(tconv(in_channels, out_channels, tuple(stride), tuple(stride)),
                         norm(out_channels, affine=True), nn.LeakyReLU(inplace=True))


class UNETRDecoder(nn.Module):
    """UNETR-style decoder.

    Args:
        input_channels: image channels (for the full-resolution conv branch).
        embed_dim: token width of the encoder.
        token_size: voxels per token per axis (powers of two).
        num_classes: output channels.
        feature_size: channels at full resolution, doubling per level (16 as in UNETR).
    Forward takes the image and `num_skips + 1` token tensors (B, L, D): the intermediate block outputs,
    shallow to deep, then the final encoder output.
    """

    def __init__(self, *, input_channels: int, embed_dim: int, token_size: Sequence[int], num_classes: int,
                 feature_size: int = 16) -> None:
        super().__init__()
        ndim = len(token_size)
        conv = _ops(ndim)[0]
        self.strides = upsampling_strides(token_size)
        levels = len(self.strides)
        self.num_skips = levels - 1
        channels = [feature_size * 2 ** level for level in range(levels)]
        self.image_branch = ConvBlock(ndim, input_channels, channels[0])
        # skip j (level j = 1..levels-1) climbs from the token grid down to level j
        self.skip_projections = nn.ModuleList()
        for level in range(1, levels):
            steps, width = [], embed_dim
            for k in range(levels - 1, level - 1, -1):
                steps.append(UpsampleBlock(ndim, width, channels[level], self.strides[k]))
                width = channels[level]
            self.skip_projections.append(nn.Sequential(*steps))
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for level in range(levels - 1, -1, -1):
            width_in = embed_dim if level == levels - 1 else channels[level + 1]
            self.up.append(UpsampleBlock(ndim, width_in, channels[level], self.strides[level]))
            self.merge.append(ConvBlock(ndim, 2 * channels[level], channels[level]))
        self.seg_layers = conv(channels[0], num_classes, 1)

    def forward(self, image: torch.Tensor, block_tokens: Sequence[torch.Tensor], grid: Sequence[int]) -> torch.Tensor:
        if len(block_tokens) != self.num_skips + 1:
            raise ValueError(f"UNETRDecoder expects {self.num_skips + 1} token tensors, got {len(block_tokens)}.")
        maps = [tokens_to_feature_map(t, grid) for t in block_tokens]
        skips = [self.image_branch(image)] + [proj(m) for proj, m in zip(self.skip_projections, maps[:-1])]
        x = maps[-1]
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.seg_layers(x)


class PatchDecoder(nn.Module):
    """Light Primus-style decoder: per level a transposed conv, channel LayerNorm and GELU; then a 1x1 head.

    Channels shrink geometrically from `embed_dim` towards 2 x num_classes (as dynamic-network-architectures'
    `PatchDecode`), rounded to multiples of 8, so the full-resolution stages stay cheap.
    """

    def __init__(self, *, embed_dim: int, token_size: Sequence[int], num_classes: int) -> None:
        super().__init__()
        ndim = len(token_size)
        conv, tconv, _ = _ops(ndim)
        self.num_skips = 0
        strides = upsampling_strides(token_size)
        ratio = (embed_dim / (2 * num_classes)) ** (1 / len(strides))
        stages, width = [], embed_dim
        for level, stride in enumerate(reversed(strides)):
            out = max(8, int(round(embed_dim / ratio ** (level + 1) / 8)) * 8)
            stages += [tconv(width, out, stride, stride), LayerNormNd(out), nn.GELU()]
            width = out
        self.decode = nn.Sequential(*stages)
        self.seg_layers = conv(width, num_classes, 1)

    def forward(self, image: torch.Tensor, block_tokens: Sequence[torch.Tensor], grid: Sequence[int]) -> torch.Tensor:
        return self.seg_layers(self.decode(tokens_to_feature_map(block_tokens[-1], grid)))
