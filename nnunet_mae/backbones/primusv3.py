"""dynamic-network-architectures' PrimusV3 (S, B, M, L), built exactly as nnU-Net 2.8.1's
`nnUNet_PrimusV3{S,B,M,L}_Trainer` builds it (8^3 tokens, `scale_attn_inner`, LayerScale 0.1, drop path 0.2 when
fine-tuning), so a fine-tuned checkpoint predicts with either trainer and a pre-training checkpoint loads with
nnU-Net's own `-pretrained_weights`; 3D only; MAE pre-training (architectures/primus_mae.py).

Trainer attribute: `primus_size`.
"""

from __future__ import annotations

import torch
from dynamic_network_architectures.architectures.primus import PrimusV3B, PrimusV3L, PrimusV3M, PrimusV3S
from einops import rearrange
from torch import nn

from nnunet_mae.architectures.primus_mae import PrimusV3BMAE, PrimusV3LMAE, PrimusV3MMAE, PrimusV3SMAE
from nnunet_mae.architectures.tokens import as_spatial_tuple, tokens_to_feature_map

SIZES = {"S": (PrimusV3S, PrimusV3SMAE), "B": (PrimusV3B, PrimusV3BMAE), "M": (PrimusV3M, PrimusV3MMAE),
         "L": (PrimusV3L, PrimusV3LMAE)}


class PrimusV3:
    name = "primusv3"
    spatial_dims = (3,)
    methods = ("mae",)

    @staticmethod
    def variants(kind: str) -> dict[str, dict]:
        """Trainer-name suffix -> class attributes (drop path 0.2 as nnU-Net's trainer, none in pre-training)."""
        drop_path = {} if kind == "pretraining" else {"drop_path_rate": 0.2}
        return {f"PrimusV3{size}": {"backbone": "primusv3", "primus_size": size, "token_size": 8, **drop_path}
                for size in SIZES}
    encoder_settings = ("primus_size", "token_size")
    mismatch_fix = ("Fine-tune with the PrimusV3 trainer of the size that was pre-trained (e.g. "
                    "nnUNetTrainerMAEFinetune_PrimusV3B after nnUNetTrainerMAEPretrain_PrimusV3B), or pre-train again.")

    @staticmethod
    def architecture_kwargs(trainer_class, configuration_manager) -> dict:
        if trainer_class.primus_size not in SIZES:
            raise ValueError(f"primus_size = {trainer_class.primus_size!r}; choose one of {sorted(SIZES)}.")
        return {"primus_size": trainer_class.primus_size, "drop_path_rate": trainer_class.drop_path_rate}

    @staticmethod
    def token_size(trainer_class, configuration_manager) -> tuple[int, ...]:
        return as_spatial_tuple(trainer_class.token_size, len(configuration_manager.patch_size), "token_size")

    @staticmethod
    def _build(network_class, kwargs: dict, **extra) -> nn.Module:
        # nnU-Net 2.8.1's nnUNet_PrimusV3*_Trainer.build_network_architecture, with the drop path of the trainer
        return network_class(kwargs["input_channels"], kwargs["num_classes"], patch_embed_size=kwargs["token_size"],
                             input_shape=kwargs["input_shape"], drop_path_rate=kwargs["drop_path_rate"],
                             scale_attn_inner=True, init_values=0.1, **extra)

    @classmethod
    def segmentation_network(cls, kwargs: dict, deep_supervision: bool = False) -> nn.Module:
        return cls._build(SIZES[kwargs["primus_size"]][0], kwargs)

    @classmethod
    def mae_network(cls, kwargs: dict, mae_decoder: dict) -> nn.Module:
        return cls._build(SIZES[kwargs["primus_size"]][1], kwargs, **mae_decoder)

    @staticmethod
    def mae_forward(network, images, ids_keep, ids_restore, mask, token_size) -> torch.Tensor:
        return network(images, ids_keep, ids_restore, mask)

    @staticmethod
    def probe_features(network, images: torch.Tensor) -> list[torch.Tensor]:
        """What PrimusV3's patch decoder reads: Eva's normalised output tokens, as a map (B, D, *grid); the first
        half of DNA's `Primus.forward` (no register tokens, no token dropping)."""
        x = network.down_projection(images)
        grid = x.shape[2:]
        tokens, _ = network.eva(rearrange(x, "b d g0 g1 g2 -> b (g0 g1 g2) d"))
        return [tokens_to_feature_map(tokens, grid)]

    @staticmethod
    def training_recipe(kind: str) -> dict:
        return {"drop_path_rate": 0.0} if kind == "pretraining" else {}
