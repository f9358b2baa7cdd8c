"""The budgets of `nnunet_mae demo` (dataset size, network size, training length) and the small trainer variants
it writes into its own nnUNet_extTrainer folder, the way a user adds variants."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PRETRAIN, FINETUNE, SCRATCH = "nnUNetTrainerMAEPretrain_demo", "nnUNetTrainerMAEFinetune_demo", "nnUNetTrainerViT_demo"


TRAINER_MODULE = "nnunet_mae_demo_trainers.py"


@dataclass(frozen=True)
class Budget:
    """Dataset size, network size and training length of one `--budget`."""
    num_cases: int  # labelled
    num_unlabeled: int
    num_test_cases: int
    shape: tuple[int, int, int]
    difficulty: float
    layout: str  # write_synthetic_dataset's layout: "random" or "consistent"
    vit: dict  # embed_dim, depth, num_heads
    decoder: str  # "unetr" or "patch" (nnUNetTrainerViT.decoder)
    mae_decoder: dict  # mae_decoder_dim, mae_decoder_depth, mae_decoder_heads
    pretrain_epochs: int
    pretrain_iterations: int
    finetune_epochs: int  # fine-tuning and from scratch alike
    finetune_iterations: int
    val_iterations: int


BUDGETS: dict[str, Budget] = {
    # the test's budget: checks that every stage runs, 2-3 minutes on 2 CPU cores; the Dice means nothing
    "tiny": Budget(num_cases=10, num_unlabeled=4, num_test_cases=2, shape=(24, 32, 24), difficulty=0.5,
                   layout="random", vit={"embed_dim": 48, "depth": 4, "num_heads": 4}, decoder="unetr",
                   mae_decoder={"mae_decoder_dim": 32, "mae_decoder_depth": 1, "mae_decoder_heads": 4},
                   pretrain_epochs=2, pretrain_iterations=4, finetune_epochs=2, finetune_iterations=3,
                   val_iterations=2),
    # under 10 minutes on 2 CPU cores; pre-training gets about 10x the iterations of each fine-tuning run
    "default": Budget(num_cases=8, num_unlabeled=60, num_test_cases=8, shape=(32, 40, 32), difficulty=1.0,
                      layout="random", vit={"embed_dim": 128, "depth": 6, "num_heads": 4}, decoder="unetr",
                      mae_decoder={"mae_decoder_dim": 64, "mae_decoder_depth": 2, "mae_decoder_heads": 4},
                      pretrain_epochs=40, pretrain_iterations=40, finetune_epochs=6, finetune_iterations=25,
                      val_iterations=4),
    # the same data, 3x the pre-training and 2x the fine-tuning: about 15 minutes on 2 CPU cores
    "long": Budget(num_cases=8, num_unlabeled=60, num_test_cases=8, shape=(32, 40, 32), difficulty=1.0,
                   layout="random", vit={"embed_dim": 128, "depth": 6, "num_heads": 4}, decoder="unetr",
                   mae_decoder={"mae_decoder_dim": 64, "mae_decoder_depth": 2, "mae_decoder_heads": 4},
                   pretrain_epochs=120, pretrain_iterations=40, finetune_epochs=12, finetune_iterations=25,
                   val_iterations=4),
}


# Gains (pre-trained minus scratch, mean Dice on the test cases) measured with `nnunet_mae demo --seed S`; the
# tables are in documentation/benchmarks.md. Filled in from those runs, printed next to each run's own gain.
MEASURED_GAINS: dict[str, dict] = {
    "default": {"seeds": [0, 1, 2], "gains": [0.015, -0.004, -0.017],
                "machine": "a 2-core AMD EPYC with AVX512-BF16 (bf16), 2026-11-30"},
}


TRAINERS_TEMPLATE = '''"""Trainer variants of `nnunet_mae demo` (budget {budget!r}), written by nnunet_mae.cli.demo.

A small ViT and short schedules so that the demo finishes in minutes on a CPU. On your own data use the
full-size trainers nnUNetTrainerMAEPretrain, nnUNetTrainerMAEFinetune and nnUNetTrainerViT (or variants
like these: settings are attributes set after super().__init__()).
"""

import torch

from nnunet_mae.training.schedules import Schedule
from nnunet_mae.training.trainers import nnUNetTrainerMAEFinetune, nnUNetTrainerMAEPretrain, nnUNetTrainerViT


class _DemoViT:
    """The demo's small ViT and its seed (seed: set after the trainer's own __init__, as nnU-Net requires)."""
    decoder = {decoder!r}

    @classmethod
    def vit_dimensions(cls):
        return {vit!r}

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.seed = {seed}


class _PretrainBudget(Schedule):
    num_epochs, iterations, val_iterations = {pretrain_epochs}, {pretrain_iterations}, {val_iterations}
    png_every = {pretrain_epochs}  # reconstructions of the first and the last epoch


class _SegmentationBudget(Schedule):
    num_epochs, iterations, val_iterations = {finetune_epochs}, {finetune_iterations}, {val_iterations}


class {pretrain}(_PretrainBudget, _DemoViT, nnUNetTrainerMAEPretrain):
    mae_decoder_dim = {mae_decoder_dim}
    mae_decoder_depth = {mae_decoder_depth}
    mae_decoder_heads = {mae_decoder_heads}
    finetune_trainer_name = "{finetune}"


class {finetune}(_SegmentationBudget, _DemoViT, nnUNetTrainerMAEFinetune):
    pretrain_trainer_name = "{pretrain}"


class {scratch}(_SegmentationBudget, _DemoViT, nnUNetTrainerViT):
    pass
'''


def write_trainer_module(folder: Path, budget_name: str, seed: int = 0) -> Path:
    b = BUDGETS[budget_name]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TRAINER_MODULE
    path.write_text(TRAINERS_TEMPLATE.format(
        budget=budget_name, seed=seed, vit=dict(b.vit), decoder=b.decoder, pretrain=PRETRAIN, finetune=FINETUNE,
        scratch=SCRATCH,
        pretrain_epochs=b.pretrain_epochs, pretrain_iterations=b.pretrain_iterations,
        finetune_epochs=b.finetune_epochs, finetune_iterations=b.finetune_iterations,
        val_iterations=b.val_iterations, **b.mae_decoder))
    return path

