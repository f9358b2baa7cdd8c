"""The encoder families a trainer is built on, chosen by one trainer attribute: `backbone = "vit"` or `"primusv3"`.

Every trainer of the package (segmentation, MAE pre-training, fine-tuning) shares its code between families; a
family contributes only what differs: which network classes, which of the trainer's attributes describe the
network, which settings must match between pre-training and fine-tuning, which dimensionalities it supports.

- "vit": the package's ViT (`vit_preset`/`vit_dimensions()`, `pos_embed`, `decoder`, `decoder_feature_size`);
  2D and 3D.
- "primusv3": dynamic-network-architectures' PrimusV3 of size `primus_size` (S, B, M, L), built exactly as
  nnU-Net 2.8.1's `nnUNet_PrimusV3{S,B,M,L}_Trainer` builds it (8³ tokens, `scale_attn_inner`, LayerScale 0.1),
  so a fine-tuned checkpoint predicts with either trainer and a pre-training checkpoint loads with nnU-Net's own
  `-pretrained_weights`; 3D only.
"""

from __future__ import annotations

import torch
from dynamic_network_architectures.architectures.primus import PrimusV3B, PrimusV3L, PrimusV3M, PrimusV3S
from einops import rearrange
from torch import nn

from nnunet_mae.architectures.mae import MAEPretrainingNetwork
from nnunet_mae.architectures.primus_mae import PrimusV3BMAE, PrimusV3LMAE, PrimusV3MMAE, PrimusV3SMAE
from nnunet_mae.architectures.segmentation import ViTSegmentationNetwork
from nnunet_mae.architectures.tokens import tokens_to_feature_map


class ViTBackbone:
    name = "vit"
    spatial_dims = (2, 3)
    encoder_settings = ("embed_dim", "depth", "num_heads", "token_size")

    @staticmethod
    def architecture_kwargs(trainer_class) -> dict:
        return {**trainer_class.vit_dimensions(), "pos_embed": trainer_class.pos_embed,
                "decoder": trainer_class.decoder, "decoder_feature_size": trainer_class.decoder_feature_size}

    @staticmethod
    def segmentation_network(kwargs: dict) -> nn.Module:
        return ViTSegmentationNetwork(**kwargs)

    @staticmethod
    def mae_network(kwargs: dict, mae_decoder: dict) -> nn.Module:
        return MAEPretrainingNetwork(**kwargs, **mae_decoder)

    @staticmethod
    def probe_features(network: ViTSegmentationNetwork, images: torch.Tensor) -> list[torch.Tensor]:
        """What the segmentation decoder reads: the blocks it takes skips from and the normalised output, as maps
        on the token grid (B, D, *grid)."""
        grid = network.encoder.grid_of(images.shape[2:])
        final, hidden = network.encoder(images, network.return_blocks)
        return [tokens_to_feature_map(t, grid) for t in (*hidden, final)]


class PrimusV3Backbone:
    name = "primusv3"
    spatial_dims = (3,)
    encoder_settings = ("primus_size", "token_size")
    SIZES = {"S": (PrimusV3S, PrimusV3SMAE), "B": (PrimusV3B, PrimusV3BMAE), "M": (PrimusV3M, PrimusV3MMAE),
             "L": (PrimusV3L, PrimusV3LMAE)}

    @classmethod
    def architecture_kwargs(cls, trainer_class) -> dict:
        if trainer_class.primus_size not in cls.SIZES:
            raise ValueError(f"primus_size = {trainer_class.primus_size!r}; choose one of {sorted(cls.SIZES)}.")
        return {"primus_size": trainer_class.primus_size}

    @classmethod
    def _build(cls, network_class, kwargs: dict, **extra) -> nn.Module:
        # nnU-Net 2.8.1's nnUNet_PrimusV3*_Trainer.build_network_architecture, with the drop path of the trainer
        return network_class(kwargs["input_channels"], kwargs["num_classes"], patch_embed_size=kwargs["token_size"],
                             input_shape=kwargs["input_shape"], drop_path_rate=kwargs["drop_path_rate"],
                             scale_attn_inner=True, init_values=0.1, **extra)

    @classmethod
    def segmentation_network(cls, kwargs: dict) -> nn.Module:
        return cls._build(cls.SIZES[kwargs["primus_size"]][0], kwargs)

    @classmethod
    def mae_network(cls, kwargs: dict, mae_decoder: dict) -> nn.Module:
        return cls._build(cls.SIZES[kwargs["primus_size"]][1], kwargs, **mae_decoder)

    @staticmethod
    def probe_features(network, images: torch.Tensor) -> list[torch.Tensor]:
        """What PrimusV3's patch decoder reads: Eva's normalised output tokens, as a map (B, D, *grid); the first
        half of DNA's `Primus.forward` (no register tokens, no token dropping)."""
        x = network.down_projection(images)
        grid = x.shape[2:]
        tokens, _ = network.eva(rearrange(x, "b d g0 g1 g2 -> b (g0 g1 g2) d"))
        return [tokens_to_feature_map(tokens, grid)]


BACKBONES = {b.name: b for b in (ViTBackbone, PrimusV3Backbone)}


def backbone_named(name: str):
    if name not in BACKBONES:
        raise ValueError(f"backbone = {name!r}; choose one of {sorted(BACKBONES)}.")
    return BACKBONES[name]


class PrimusV3SBackbone:
    """Attribute mixin: a trainer on nnU-Net's PrimusV3-S (drop path 0.2 as nnUNet_PrimusV3S_Trainer); the B, M
    and L trainers are subclasses of the S ones with `primus_size` changed."""

    backbone, primus_size, token_size, drop_path_rate = "primusv3", "S", 8, 0.2

