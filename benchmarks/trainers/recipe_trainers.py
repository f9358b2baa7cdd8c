"""Trainers of benchmarks/mae_recipe.py: MAE pre-training recipes compared by the probe at one CPU budget.

Every recipe: 40 epochs x 100 iterations (the learning-rate schedule fits that budget: 5% warm-up, then poly),
2 validation iterations, seed 0, and a snapshot of the network every 4 epochs (snapshots/epoch_XXXX.pth, weights
only) so that other probes can read the same encoders later. Only the attribute named in each class differs.
"""

from __future__ import annotations

import torch
from snapshots import Snapshots  # this folder: on sys.path while nnU-Net looks up a trainer

from nnunet_mae.training.schedules import Schedule
from nnunet_mae.training.trainers import nnUNetTrainerMAEPretrain


class RecipeBudget(Snapshots, Schedule):
    num_epochs, iterations, val_iterations, png_every = 40, 100, 2, 10
    snapshot_every = 4

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.seed = 0
        self.probe_every = 0  # the snapshots are probed afterwards, with several seeds (benchmarks/mae_recipe.py)
        # the recipes as measured before 2026-12-06 (masked-token loss only, no uniformity term); `unif`, `vis` set them
        self.uniformity_weight, self.loss_on_visible = 0.0, False

    def snapshot_now(self, epoch: int) -> bool:
        return (epoch + 1) % self.snapshot_every == 0 or epoch == 0


class nnUNetTrainerMAEPretrain_recipe_default(RecipeBudget, nnUNetTrainerMAEPretrain):
    """The package's recipe until 2026-12-06 (nnssl's): AdamW 3e-4, betas 0.9/0.98, wd 0.05, raw z-scored targets,
    mask 0.75, no uniformity term."""


class nnUNetTrainerMAEPretrain_recipe_normpix(RecipeBudget, nnUNetTrainerMAEPretrain):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.normalize_targets = True


class nnUNetTrainerMAEPretrain_recipe_lr1e4(RecipeBudget, nnUNetTrainerMAEPretrain):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 1e-4


class nnUNetTrainerMAEPretrain_recipe_lr1e3(RecipeBudget, nnUNetTrainerMAEPretrain):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 1e-3


class nnUNetTrainerMAEPretrain_recipe_mr50(RecipeBudget, nnUNetTrainerMAEPretrain):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.mask_ratio = 0.5


class nnUNetTrainerMAEPretrain_recipe_mr90(RecipeBudget, nnUNetTrainerMAEPretrain):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.mask_ratio = 0.9


class nnUNetTrainerMAEPretrain_recipe_dec8(RecipeBudget, nnUNetTrainerMAEPretrain):
    """A deeper decoder (MAE paper: 8 blocks; linear probing rises with decoder depth)."""

    mae_decoder_depth, mae_decoder_dim, mae_decoder_heads = 8, 256, 8


class nnUNetTrainerMAEPretrain_recipe_long(RecipeBudget, nnUNetTrainerMAEPretrain):
    """3x the budget (120 epochs), the same recipe."""

    num_epochs = 120
    snapshot_every = 12


class nnUNetTrainerMAEPretrain_recipe_unif(RecipeBudget, nnUNetTrainerMAEPretrain):
    """The nnssl recipe plus U-MAE's uniformity term on the encoder's tokens at weight 0.5 (Zhang et al., NeurIPS
    2022; losses/uniformity.py, `uniformity_weight`): the mean squared cosine
    similarity between different visible tokens of the batch, centred over the batch (random init: about 0.06; the
    nnssl recipe after 4,000 iterations: 0.66). Training steps only; the validation loss stays the reconstruction
    loss. (The run of 2026-12-06 used this term written here, as a hook in this class; the package's is the same.)"""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.uniformity_weight = 0.5


class nnUNetTrainerMAEPretrain_recipe_vis(RecipeBudget, nnUNetTrainerMAEPretrain):
    """The nnssl recipe with the loss on every token, visible ones included, in training steps (MAE's ablation "loss
    on all patches"; the package's default for the ViT since 2026-12-06, `loss_on_visible`): the decoder must give
    back each visible token, so the encoder cannot drop per-token information. The validation loss stays the
    masked-token loss. (The run of 2026-12-06 used this loss written here, in this class; the package's is the same.)"""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.loss_on_visible = True


class nnUNetTrainerMAEPretrain_recipe_vis_seed1(nnUNetTrainerMAEPretrain_recipe_vis):
    """`vis` with pre-training seed 1 (network initialisation, masks, sampling): the spread between pre-training
    seeds."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.seed = 1
