"""Which state-dict keys of a network form its pre-trainable encoder, and what role each has.

One owner for the names that weight transfer (transfer/encoder_transfer.py) and layer-wise learning-rate decay
(training/param_groups.py) need, read from what the network declares, as dynamic-network-architectures' networks do
(`key_to_encoder`, `key_to_stem`, `keys_to_in_proj`, `key_to_lpe`): DNA's Primus/PrimusV3 and U-Nets
(PlainConvUNet, ResidualEncoderUNet), and the package's ViT, which declares the same names. Plus, for PrimusV3, the
first stem block's 1x1 skip projection, which also reads the image channels and which DNA's `keys_to_in_proj` omits.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class EncoderLayout:
    prefixes: tuple[str, ...]  # keys under these belong to the encoder (stem, position embedding, blocks, norm)
    pos_embed_key: str | None  # absolute position embedding (1, L, D): resampled for another token grid
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


PRIMUSV3_SKIP_IN_PROJ = ("down_projection.stem.blocks.0.skip.0.conv",
                         "down_projection.stem.blocks.0.skip.0.all_modules.0")


def encoder_layout(network: nn.Module) -> EncoderLayout:
    """The layout `network` (unwrapped) declares."""
    if not hasattr(network, "key_to_encoder"):
        raise ValueError(f"{type(network).__name__} declares no encoder (key_to_encoder, key_to_stem, keys_to_in_proj "
                         f"as dynamic-network-architectures' networks do): its encoder cannot be transferred.")
    keys = set(network.state_dict())
    in_proj = [m + ".weight" for m in (*network.keys_to_in_proj, *PRIMUSV3_SKIP_IN_PROJ) if m + ".weight" in keys]
    lpe = getattr(network, "key_to_lpe", None)
    return EncoderLayout(prefixes=(network.key_to_stem + ".", network.key_to_encoder + "."), pos_embed_key=lpe,
                         stem_input_keys=tuple(dict.fromkeys(in_proj)),
                         stem_prefixes=(network.key_to_stem + ".",) + ((lpe,) if lpe else ()),
                         block_prefix=network.key_to_encoder + ".blocks.")
