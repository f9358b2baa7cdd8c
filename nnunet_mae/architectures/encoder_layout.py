"""Which state-dict keys of a network form its pre-trainable encoder, and what role each has.

One owner for the names that weight transfer (transfer/encoder_transfer.py) and layer-wise learning-rate decay
(training/param_groups.py) need, for both encoder families:
- the package's ViT: `encoder.*` (stem `encoder.patch_embed`, `encoder.pos_embed`, `encoder.blocks.i`, norm);
- dynamic-network-architectures' Primus / PrimusV3 (nnU-Net's `nnUNet_Primus*_Trainer` networks): the names DNA
  declares on the network itself (`key_to_stem`, `key_to_encoder`, `key_to_lpe`, `keys_to_in_proj`), plus, for
  PrimusV3, the first stem block's 1×1 skip projection, which also reads the image channels and which DNA's
  `keys_to_in_proj` does not name.
"""

from __future__ import annotations

from dataclasses import dataclass

from dynamic_network_architectures.architectures.primus import Primus
from torch import nn


@dataclass(frozen=True)
class EncoderLayout:
    prefixes: tuple[str, ...]  # keys under these belong to the encoder (stem, position embedding, blocks, norm)
    pos_embed_key: str  # absolute position embedding (1, L, D): resampled for another token grid
    stem_input_keys: tuple[str, ...]  # convolution weights whose 2nd axis is the image channels
    stem_prefixes: tuple[str, ...]  # layer 0 of the layer-wise learning-rate decay
    block_prefix: str  # "<block_prefix><i>." is block i (layer i + 1)

    def is_encoder(self, key: str) -> bool:
        return key.startswith(self.prefixes)

    def layer_id(self, name: str, depth: int) -> int:
        """0 for the stem and position embedding, i + 1 for block i, depth + 1 for everything after the blocks."""
        if name.startswith(self.stem_prefixes):
            return 0
        if name.startswith(self.block_prefix):
            return int(name[len(self.block_prefix):].split(".")[0]) + 1
        return depth + 1

    def depth(self, network: nn.Module) -> int:
        blocks = {name[len(self.block_prefix):].split(".")[0] for name, _ in network.named_parameters()
                  if name.startswith(self.block_prefix)}
        return len(blocks)


VIT_LAYOUT = EncoderLayout(prefixes=("encoder.",), pos_embed_key="encoder.pos_embed",
                           stem_input_keys=("encoder.patch_embed.weight",),
                           stem_prefixes=("encoder.patch_embed", "encoder.pos_embed"), block_prefix="encoder.blocks.")
PRIMUSV3_SKIP_IN_PROJ = ("down_projection.stem.blocks.0.skip.0.conv",
                         "down_projection.stem.blocks.0.skip.0.all_modules.0")


def encoder_layout(network: nn.Module) -> EncoderLayout:
    """The layout of `network` (unwrapped): a DNA Primus network's declared keys, else the package's ViT."""
    if not isinstance(network, Primus):
        return VIT_LAYOUT
    keys = set(network.state_dict())
    in_proj = [m + ".weight" for m in (*network.keys_to_in_proj, *PRIMUSV3_SKIP_IN_PROJ) if m + ".weight" in keys]
    return EncoderLayout(prefixes=(network.key_to_stem + ".", network.key_to_encoder + "."),
                         pos_embed_key=network.key_to_lpe, stem_input_keys=tuple(in_proj),
                         stem_prefixes=(network.key_to_stem + ".", network.key_to_lpe),
                         block_prefix=network.key_to_encoder + ".blocks.")
