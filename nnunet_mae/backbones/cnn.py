"""nnU-Net's own CNN: the U-Net its plans describe (PlainConvUNet for `nnUNetPlans`, ResidualEncoderUNet for the
ResEnc presets `nnUNetResEncUNet{M,L,XL}Plans`), built exactly as `nnUNetTrainer.build_network_architecture` builds
it, so a pre-training checkpoint loads into nnU-Net's own `nnUNetTrainer` with `-pretrained_weights` (only
`.seg_layers.`, the 1x1 output convolutions, differ) under the same plans.

MAE as nnssl's `BaseMAETrainer` (Wald et al., CVPR 2025): the same network reconstructs the input channels from an
input whose masked blocks are zero (dense; no token dropping), loss = MSE on the masked voxels only, no per-patch
normalisation; blocks of the bottleneck's size (the network's total stride, as the paper's S3D) by default, or
`mask_block_size` = 16 (nnssl's 16^3 blocks) where the patch is a multiple of it. Optimiser as nnssl's: SGD Nesterov,
momentum 0.99, lr 1e-2, weight decay 3e-5, poly, gradient norm clipped at 12. Fine-tuning as the paper: the whole
network, linear warm-up then poly, peak lr 1e-3, no freezing, deep supervision (nnU-Net's loss).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from nnunet_mae.architectures.tokens import patchify, token_grid, unpatchify


def bottleneck_stride(arch_kwargs: dict) -> tuple[int, ...]:
    """Voxels per bottleneck cell along each axis: the product of the stages' strides."""
    strides = np.array([np.atleast_1d(s) for s in arch_kwargs["strides"]])
    return tuple(int(v) for v in strides.prod(0))


class CNN:
    name = "cnn"
    spatial_dims = (2, 3)
    methods = ("mae",)
    encoder_settings = ("network_class", "encoder_arch")
    mismatch_fix = ("Pre-training and fine-tuning need the same plans (nnUNetv2_train ... -p PLANS for both): "
                    "fine-tune with the plans it was pre-trained with, or pre-train with these plans: "
                    "`{pretrain_command}`.")

    @staticmethod
    def variants(kind: str) -> dict[str, dict]:
        return {"CNN": {"backbone": "cnn"}}

    @staticmethod
    def architecture_kwargs(trainer_class, configuration_manager) -> dict:
        arch = dict(configuration_manager.network_arch_init_kwargs)
        return {"network_class": configuration_manager.network_arch_class_name, "arch_kwargs": arch,
                "arch_kwargs_req_import": list(configuration_manager.network_arch_init_kwargs_req_import),
                "encoder_arch": {k: v for k, v in arch.items() if "decoder" not in k}}

    @staticmethod
    def token_size(trainer_class, configuration_manager) -> tuple[int, ...]:
        block = getattr(trainer_class, "mask_block_size", "bottleneck")
        if block == "bottleneck":
            return bottleneck_stride(configuration_manager.network_arch_init_kwargs)
        return (int(block),) * len(configuration_manager.patch_size)

    @staticmethod
    def segmentation_network(kwargs: dict, deep_supervision: bool = True) -> nn.Module:
        # nnUNetTrainer.build_network_architecture's call
        return get_network_from_plans(kwargs["network_class"], kwargs["arch_kwargs"], kwargs["arch_kwargs_req_import"],
                                      kwargs["input_channels"], kwargs["num_classes"], allow_init=True,
                                      deep_supervision=deep_supervision)

    @classmethod
    def mae_network(cls, kwargs: dict, mae_decoder: dict) -> nn.Module:
        """The segmentation network with one output per input channel (the reconstruction), no deep supervision."""
        return cls.segmentation_network({**kwargs, "num_classes": kwargs["input_channels"]}, deep_supervision=False)

    @staticmethod
    def mae_forward(network, images, ids_keep, ids_restore, mask, token_size) -> torch.Tensor:
        """Masked blocks zeroed, the whole volume through the U-Net, its output cut into blocks (B, L, P)."""
        grid = token_grid(images.shape[2:], token_size)
        visible = (1 - mask.to(images.dtype)).unsqueeze(-1).expand(-1, -1, math.prod(token_size))
        masked = images * unpatchify(visible, token_size, grid, 1)
        return patchify(network(masked), token_size)

    @staticmethod
    def probe_features(network, images: torch.Tensor) -> list[torch.Tensor]:
        """What the decoder keeps from the encoder: the output of every encoder stage (its skips)."""
        return list(network.encoder(images))

    @staticmethod
    def training_recipe(kind: str) -> dict:
        recipe = {"optimizer_type": "sgd", "momentum": 0.99, "weight_decay": 3e-5, "grad_clip": 12.0,
                  "layer_decay": None}
        if kind == "pretraining":
            return {**recipe, "initial_lr": 1e-2, "warmup_fraction": 0.0, "enable_deep_supervision": False}
        return {**recipe, "initial_lr": 1e-3 if kind == "finetuning" else 1e-2,
                "warmup_fraction": 0.05 if kind == "finetuning" else 0.0, "enable_deep_supervision": True}
