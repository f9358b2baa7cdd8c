"""The package's ViT (`architectures/`): 2D and 3D, UNETR-style or patch decoder; MAE and GMIM pre-training.

Trainer attributes: `vit_preset` (or `vit_dimensions()`), `token_size`, `pos_embed`, `decoder`,
`decoder_feature_size`, `drop_path_rate`.
"""

from __future__ import annotations

import torch
from torch import nn

from nnunet_mae.architectures.mae import MAEPretrainingNetwork
from nnunet_mae.architectures.segmentation import ViTSegmentationNetwork
from nnunet_mae.architectures.tokens import as_spatial_tuple, tokens_to_feature_map


class ViT:
    name = "vit"
    spatial_dims = (2, 3)
    methods = ("mae", "gmim")

    @staticmethod
    def variants(kind: str) -> dict[str, dict]:
        return {"": {}}  # the base trainers are the ViT's
    encoder_settings = ("embed_dim", "depth", "num_heads", "token_size")
    mismatch_fix = ("Fine-tune with a trainer of the same ViT size and token size (class attributes vit_preset, "
                    "token_size, e.g. a subclass with vit_preset = 'T'), or pre-train again with this size.")

    @staticmethod
    def architecture_kwargs(trainer_class, configuration_manager) -> dict:
        return {**trainer_class.vit_dimensions(), "pos_embed": trainer_class.pos_embed,
                "decoder": trainer_class.decoder, "decoder_feature_size": trainer_class.decoder_feature_size,
                "drop_path_rate": trainer_class.drop_path_rate}

    @staticmethod
    def token_size(trainer_class, configuration_manager) -> tuple[int, ...]:
        return as_spatial_tuple(trainer_class.token_size, len(configuration_manager.patch_size), "token_size")

    @staticmethod
    def segmentation_network(kwargs: dict, deep_supervision: bool = False) -> nn.Module:
        return ViTSegmentationNetwork(**kwargs)

    @staticmethod
    def mae_network(kwargs: dict, mae_decoder: dict) -> nn.Module:
        return MAEPretrainingNetwork(**kwargs, **mae_decoder)

    # MAE's loss on every token, visible ones included, in training steps: measured for ViT-S on Hippocampus (the
    # masked-only loss collapses the encoder there; documentation/benchmarks.md)
    mae_loss_on_visible = True

    @staticmethod
    def mae_encoder_output(network: nn.Module) -> nn.Module:
        """The module whose output is the encoder's tokens in the MAE forward (the final norm, (B, L_visible, D)): where
        the optional uniformity term (`uniformity_weight`) reads them."""
        return network.encoder.norm

    @staticmethod
    def mae_forward(network, images, ids_keep, ids_restore, mask, token_size) -> torch.Tensor:
        return network(images, ids_keep, ids_restore)

    @staticmethod
    def probe_features(network: ViTSegmentationNetwork, images: torch.Tensor) -> list[torch.Tensor]:
        """What the segmentation decoder reads: the blocks it takes skips from and the normalised output, as maps
        on the token grid (B, D, *grid)."""
        grid = network.encoder.grid_of(images.shape[2:])
        final, hidden = network.encoder(images, network.return_blocks)
        return [tokens_to_feature_map(t, grid) for t in (*hidden, final)]

    @staticmethod
    def training_recipe(kind: str) -> dict:
        return {}  # the base trainer's own recipe is the ViT's
