"""Trainers of benchmarks/label_efficiency.py: each arm's trainer with only its budget and seed changed.

The budget (epochs × iterations per arm, validation iterations) is not a constant here: the benchmark measures
every arm's step time side by side at its start and writes the equal-time iteration counts to a JSON file named
by LABEL_EFFICIENCY_BUDGET (benchmarks/converged.py writes its measured convergence budgets to such a file too:
`epochs_per_trainer` overrides `epochs`; `attributes` sets trainer attributes where the trainer has them, such as
a pre-training's `probe_every`); LABEL_EFFICIENCY_SEED seeds Python, NumPy and torch before the network is built.
Everything else (network, loss, optimiser, augmentation, precision) is the base trainer's own recipe.
Final validation runs without test-time mirroring for every arm alike (8× less prediction time on a CPU).
"""

from __future__ import annotations

import json
import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.primus.primus_trainers import nnUNet_Primus_S_Trainer, nnUNet_PrimusV3S_Trainer

from nnunet_mae.training.seeding import seed_everything
from nnunet_mae.training.trainers import (nnUNetTrainerMAEFinetune, nnUNetTrainerMAEFinetune_CNN,
                                          nnUNetTrainerMAEFinetune_patchdec, nnUNetTrainerMAEFinetune_PrimusV3S,
                                          nnUNetTrainerMAEPretrain, nnUNetTrainerMAEPretrain_CNN,
                                          nnUNetTrainerMAEPretrain_PrimusV3S, nnUNetTrainerViT,
                                          nnUNetTrainerViT_patchdec)

BUDGET_ENV, SEED_ENV = "LABEL_EFFICIENCY_BUDGET", "LABEL_EFFICIENCY_SEED"


def read_budget(trainer_name: str) -> dict:
    path = os.environ.get(BUDGET_ENV)
    if not path or not os.path.isfile(path):
        raise RuntimeError(f"{trainer_name} is a trainer of benchmarks/label_efficiency.py: run it through that "
                           f"script ({BUDGET_ENV} must name the budget file the script writes).")
    budget = json.loads(open(path).read())
    if trainer_name not in budget["iterations_per_epoch"]:
        raise RuntimeError(f"{path} has no budget for {trainer_name}: run the benchmark's 'time' stage again.")
    return budget


class EqualTime:
    """Mixin: epochs and iterations from the benchmark's budget file, seeded start, no test-time mirroring."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        budget = read_budget(type(self).__name__)
        self.num_epochs = budget.get("epochs_per_trainer", {}).get(type(self).__name__, budget["epochs"])
        self.num_iterations_per_epoch = budget["iterations_per_epoch"][type(self).__name__]
        self.num_val_iterations_per_epoch = budget["val_iterations"]
        self.benchmark_seed = int(os.environ.get(SEED_ENV, "0"))
        if hasattr(self, "seed"):  # nnunet_mae trainers: also seeds the pre-training masks
            self.seed = self.benchmark_seed
        if hasattr(self, "warmup_duration_whole_net"):  # Primus: its warm-up (50 of 1000 epochs) scaled to the budget
            self.warmup_duration_whole_net = max(1, round(self.num_epochs * 50 / 1000))
        for key, value in budget.get("attributes", {}).items():  # e.g. a pre-training's probe_every, probe_fold
            if hasattr(self, key):
                setattr(self, key, value)
        if hasattr(self, "reconstruction_png_every"):
            self.reconstruction_png_every = max(1, self.num_epochs // 2)

    def initialize(self):
        if not self.was_initialized:
            seed_everything(self.benchmark_seed)  # before the network is built: same seed, same initial weights
        super().initialize()

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.inference_allowed_mirroring_axes = None
        super().perform_actual_validation(save_probabilities)


class nnUNetTrainer_le(EqualTime, nnUNetTrainer):
    pass


class nnUNet_Primus_S_Trainer_le(EqualTime, nnUNet_Primus_S_Trainer):
    pass


class nnUNet_PrimusV3S_Trainer_le(EqualTime, nnUNet_PrimusV3S_Trainer):
    pass


class nnUNetTrainerViT_le(EqualTime, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_patchdec_le(EqualTime, nnUNetTrainerViT_patchdec):
    pass


class nnUNetTrainerMAEPretrain_le(EqualTime, nnUNetTrainerMAEPretrain):
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_le"


class nnUNetTrainerMAEFinetune_le(EqualTime, nnUNetTrainerMAEFinetune):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_le"


class nnUNetTrainerMAEFinetune_patchdec_le(EqualTime, nnUNetTrainerMAEFinetune_patchdec):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_le"


class nnUNetTrainerMAEPretrain_CNN_le(EqualTime, nnUNetTrainerMAEPretrain_CNN):
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_CNN_le"


class nnUNetTrainerMAEFinetune_CNN_le(EqualTime, nnUNetTrainerMAEFinetune_CNN):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_CNN_le"


class nnUNetTrainerMAEPretrain_PrimusV3S_le(EqualTime, nnUNetTrainerMAEPretrain_PrimusV3S):
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_PrimusV3S_le"


class nnUNetTrainerMAEFinetune_PrimusV3S_le(EqualTime, nnUNetTrainerMAEFinetune_PrimusV3S):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_PrimusV3S_le"
