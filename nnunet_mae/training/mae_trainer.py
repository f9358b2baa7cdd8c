"""`nnUNetTrainerMAEPretrain`: MAE self-pre-training on the dataset's own preprocessed images (and unlabeled ones).

What is MAE's own: random masking of `mask_ratio` (75%) of the tokens (for the CNN: of the blocks of its token
size), the backbone's MAE network and forward (ViT, PrimusV3: the encoder sees the visible tokens only, a light
decoder reconstructs the masked ones; CNN: masked blocks zeroed, the U-Net reconstructs), the loss on the masked
tokens — for the ViT in training steps on every token, visible ones included (`loss_on_visible`): with the
masked-only loss its encoder's tokens collapse on Hippocampus, because the decoder can predict masked tokens from
position and an image-level code; reconstructing the visible tokens too makes it keep per-token information
(documentation/benchmarks.md). Optional: U-MAE's uniformity term on the encoder's tokens (`uniformity_weight`, 0 by
default). The validation loss is always the masked-token loss. Data, validation, best checkpoint, the probe,
reconstruction PNGs and the pre-flight transfer check come from `PretrainingTrainer` (pretrain_trainer.py), shared
with GMIM.
"""

from __future__ import annotations

import numpy as np
import torch
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_mae.architectures.tokens import patchify, token_grid
from nnunet_mae.losses.reconstruction import masked_reconstruction_loss
from nnunet_mae.losses.uniformity import token_uniformity_loss
from nnunet_mae.masking.random_masking import random_token_masking
from nnunet_mae.training.distributed import unwrap_network
from nnunet_mae.training.pretrain_trainer import PretrainingTrainer


class nnUNetTrainerMAEPretrain(PretrainingTrainer):
    """MAE: random masking of 75% of the tokens, the encoder sees the visible ones, loss on the masked ones."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        family = self.backbone_family()
        self.loss_on_visible = getattr(family, "mae_loss_on_visible", False)
        self.uniformity_weight = getattr(family, "mae_uniformity_weight", 0.0)

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return cls.backbone_family().mae_network(
            cls.network_kwargs(configuration_manager, num_input_channels, num_output_channels),
            dict(mae_decoder_dim=cls.mae_decoder_dim, mae_decoder_depth=cls.mae_decoder_depth,
                 mae_decoder_heads=cls.mae_decoder_heads))

    def masking_metadata(self) -> dict:
        return {"type": "random", "mask_ratio": self.mask_ratio, "normalize_targets": self.normalize_targets,
                "loss_on_visible": self.loss_on_visible, "uniformity_weight": self.uniformity_weight}

    def mask_and_reconstruct(self, data: torch.Tensor, generator: torch.Generator | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns predictions (B, L, P), target tokens (B, L, P) and the mask (B, L), 1 = masked."""
        token = self.token_size_for(self.configuration_manager)
        num_tokens = int(np.prod(token_grid(data.shape[2:], token)))
        ids_keep, ids_restore, mask = random_token_masking(data.shape[0], num_tokens, self.mask_ratio,
                                                           device=data.device,
                                                           generator=self.training_generator(generator))
        pred = self.backbone_family().mae_forward(self.network, data, ids_keep, ids_restore, mask, token)
        return pred, patchify(data, token), mask

    def compute_loss(self, data: torch.Tensor, target=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """The masked-token reconstruction loss; in training steps on every token if `loss_on_visible`, plus
        `uniformity_weight` x the encoder tokens' uniformity term (the validation loss stays the masked-token loss,
        comparable between settings)."""
        training = torch.is_grad_enabled()
        tokens = []
        hook = None
        if self.uniformity_weight and training:
            family = self.backbone_family()
            if not hasattr(family, "mae_encoder_output"):
                raise ValueError(f"uniformity_weight = {self.uniformity_weight}, but the {family.name} backbone does "
                                 f"not say where its encoder's tokens are (mae_encoder_output): set it to 0.")
            hook = family.mae_encoder_output(unwrap_network(self.network)).register_forward_hook(
                lambda module, inputs, output: tokens.append(output))
        try:
            pred, target_tokens, mask = self.mask_and_reconstruct(data, generator)
        finally:
            if hook is not None:
                hook.remove()
        counted = torch.ones_like(mask) if self.loss_on_visible and training else mask
        loss = masked_reconstruction_loss(pred, target_tokens, counted, self.normalize_targets)
        return loss + self.uniformity_weight * token_uniformity_loss(tokens[-1]) if tokens else loss


class nnUNetTrainerMAEPretrain_normpix(nnUNetTrainerMAEPretrain):
    """SelfMedMAE's per-token normalised targets."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.normalize_targets = True
