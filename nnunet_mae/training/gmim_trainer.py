"""`nnUNetTrainerGMIMPretrain` / `nnUNetTrainerGMIMFinetune`: GMIM (Qi et al., Comput. Biol. Med. 2024) in nnU-Net.

A sibling of `nnUNetTrainerMAEPretrain` on `PretrainingTrainer` (pretrain_trainer.py: data, validation, best
checkpoint, PNGs, transfer check); what is GMIM's own:
- mask: `grid_token_mask` (entropy-adaptive grid, base ratio 0.5, spread 0.3), then `hierarchical_remask`
  at the 3 block-group boundaries (`remask_block_indices`), each with probability 0.3 per sample and a
  ratio multiplied by `hierarchical_decay` (0.5) per level from base ratio x `hierarchical_decay` (0.25, 0.125,
  0.0625 of the visible tokens), as the released code multiplies the cell ratios by `--hierarchical_masking 0.5`
  per level;
- network: `GMIMPretrainingNetwork` (all tokens through the encoder, mask token, stop-gradient siamese branch);
- second view: `intensity_view` (data/intensity_view.py), GMIM's MONAI intensity augmentation (contrast, shift,
  Gaussian noise) written in torch on the batch;
- loss: masked reconstruction MSE on the union of all masked tokens + 0.005 x `cross_correlation_loss`
  (off-diagonal weight 0.005) of the pooled, projected tokens. Validation (fixed-seed masks) and the
  reconstruction PNGs use the reconstruction term only.

Fine-tuning is `nnUNetTrainerMAEFinetune` pointed at the GMIM pre-training folder.
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from nnunet_mae.architectures.gmim import GMIMPretrainingNetwork, remask_block_indices
from nnunet_mae.architectures.tokens import patchify
from nnunet_mae.data.intensity_view import intensity_view
from nnunet_mae.losses.cross_correlation import cross_correlation_loss
from nnunet_mae.losses.reconstruction import masked_reconstruction_loss
from nnunet_mae.masking.grid_masking import grid_token_mask, hierarchical_ratios, hierarchical_remask
from nnunet_mae.training.distributed import mean_over_ranks, unwrap_network
from nnunet_mae.training.finetune_trainer import nnUNetTrainerMAEFinetune
from nnunet_mae.training.pretrain_trainer import PretrainingTrainer
from nnunet_mae.backbones import backbones_for


class nnUNetTrainerGMIMPretrain(PretrainingTrainer):
    # Class attributes: the network (projector heads or not) is built from them.
    projector_hidden_dim: int = 1024
    projector_dim: int = 512  # released code: Linear(dim, 512) per branch
    siamese_weight: float = 0.005  # 0 builds no projector heads and trains reconstruction only
    remask_levels: int = 3
    finetune_trainer_name: str = "nnUNetTrainerGMIMFinetune"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.grid_base_ratio = 0.5
        self.grid_spread = 0.3
        self.hierarchical_probability = 0.3  # GMIM --drop_ratio
        self.hierarchical_decay = 0.5  # GMIM --hierarchical_masking: ratio factor per level
        self.off_diagonal_weight = 0.005
        self.mask_ratio = self.grid_base_ratio  # unused by GMIM; shown in the reconstruction PNG title

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        if "gmim" not in cls.backbone_family().methods:
            supported = ", ".join(f.name for f in backbones_for(method="gmim"))
            raise ValueError(f"{cls.__name__}: GMIM pre-trains the {supported} backbone only, not "
                             f"{cls.backbone!r}. Use MAE for it: nnUNetTrainerMAEPretrain_<backbone> "
                             f"(e.g. nnUNetTrainerMAEPretrain_PrimusV3S, nnUNetTrainerMAEPretrain_CNN).")
        return GMIMPretrainingNetwork(
            **cls.network_kwargs(configuration_manager, num_input_channels, num_output_channels),
            mae_decoder_dim=cls.mae_decoder_dim, mae_decoder_depth=cls.mae_decoder_depth,
            mae_decoder_heads=cls.mae_decoder_heads, projector_hidden_dim=cls.projector_hidden_dim,
            projector_dim=cls.projector_dim, siamese=cls.siamese_weight > 0)

    def remask_ratios(self) -> list[float]:
        return hierarchical_ratios(self.grid_base_ratio * self.hierarchical_decay, self.remask_levels,
                                   self.hierarchical_decay)

    def masking_metadata(self) -> dict:
        depth = self.vit_dimensions()["depth"]  # what the network is built with (subclasses may override it)
        return {"type": "gmim", "base_ratio": self.grid_base_ratio, "spread": self.grid_spread,
                "hierarchical_probability": self.hierarchical_probability,
                "hierarchical_ratios": self.remask_ratios(),
                "remask_after_blocks": remask_block_indices(depth, self.remask_levels),
                "siamese_weight": self.siamese_weight, "off_diagonal_weight": self.off_diagonal_weight,
                "normalize_targets": self.normalize_targets}

    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()  # sets the per-GPU batch size
        if self.siamese_weight > 0 and self.batch_size < 2:
            raise ValueError(f"GMIM's cross-correlation loss standardises over the batch and needs >= 2 samples "
                             f"per GPU, but the batch size is {self.batch_size}. Use fewer GPUs or a larger batch, "
                             f"or a subclass with siamese_weight = 0 (reconstruction only).")
        super().on_train_start()

    # ----- steps --------------------------------------------------------------------------------------------
    def gmim_masks(self, data: torch.Tensor, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor]]]:
        """Grid mask (B, L) and the cumulative re-masks [(block index, (B, L)), ...]."""
        token = self.token_size_for(self.configuration_manager)
        mask, _ = grid_token_mask(data, token, base_ratio=self.grid_base_ratio,
                                  spread=self.grid_spread, generator=generator)
        remasks, current = [], mask
        blocks = remask_block_indices(len(unwrap_network(self.network).encoder.blocks), self.remask_levels)
        for block, ratio in zip(blocks, self.remask_ratios()):
            current = hierarchical_remask(current, ratio, self.hierarchical_probability, generator=generator)
            remasks.append((block, current))
        return mask, remasks

    def gmim_forward(self, data: torch.Tensor, generator: torch.Generator | None = None, siamese: bool = False
                     ) -> tuple[dict, torch.Tensor]:
        """The network's output dict and the target voxel tokens (B, L, P)."""
        generator = self.training_generator(generator)
        mask, remasks = self.gmim_masks(data, generator)
        second_view = intensity_view(data, generator=generator) if siamese else None
        out = self.network(data, mask, remasks, second_view)
        return out, patchify(data, self.token_size_for(self.configuration_manager))

    def mask_and_reconstruct(self, data: torch.Tensor, generator: torch.Generator | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predictions (B, L, P), target tokens (B, L, P) and the union mask (B, L), no siamese branch."""
        out, target_tokens = self.gmim_forward(data, generator)
        return out["pred"], target_tokens, out["mask"]

    def loss_terms(self, data: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """"loss" and its terms. Training: reconstruction + siamese_weight x cross-correlation; validation (eval
        mode) and siamese_weight = 0: reconstruction only."""
        siamese = self.siamese_weight > 0 and self.network.training
        out, target_tokens = self.gmim_forward(data, generator, siamese)
        reconstruction = masked_reconstruction_loss(out["pred"], target_tokens, out["mask"], self.normalize_targets)
        if not siamese:
            return {"loss": reconstruction}
        correlation = cross_correlation_loss(out["z_online"], out["z_target"],
                                             off_diagonal_weight=self.off_diagonal_weight)
        return {"loss": reconstruction + self.siamese_weight * correlation,
                "reconstruction": reconstruction.detach().float(), "cross_correlation": correlation.detach().float()}

    def compute_loss(self, data: torch.Tensor, target=None, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.loss_terms(data, generator)["loss"]

    def training_losses(self, data: torch.Tensor, target=None) -> dict[str, torch.Tensor]:
        return self.loss_terms(data)

    def on_train_epoch_end(self, train_outputs: List[dict]):
        if train_outputs and "cross_correlation" in train_outputs[0]:
            reconstruction = mean_over_ranks([o["reconstruction"] for o in train_outputs])
            correlation = mean_over_ranks([o["cross_correlation"] for o in train_outputs])
            self.print_to_log_file(f"train reconstruction loss {np.round(reconstruction, 4)}, "
                                   f"cross-correlation loss {np.round(correlation, 2)} (weight {self.siamese_weight})")
        super().on_train_epoch_end(train_outputs)


class nnUNetTrainerGMIMFinetune(nnUNetTrainerMAEFinetune):
    pretrain_trainer_name: str = "nnUNetTrainerGMIMPretrain"
