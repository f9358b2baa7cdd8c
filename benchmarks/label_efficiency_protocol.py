"""What benchmarks/label_efficiency.py compares and where its runs live: arms, pre-trainings, protocols, fractions,
the order of the runs. Shared by the script and its report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common import trainer_folder

FRACTIONS = {"10%": (1, 0.1), "100%": (0, 1.0)}  # name -> (fold in splits_final.json, share of fold 0's cases)
SUBSET_SEED = 0


@dataclass(frozen=True)
class Arm:
    title: str
    base: str  # the trainer timed in the 'time' stage (the arm's trainer without the benchmark budget)
    trainer: str  # benchmarks/trainers/label_efficiency_trainers.py
    pretraining: str | None = None
    scratch: str | None = None  # the arm this one must beat
    gpu_only: bool = False
    same_network: bool = False  # as its scratch arm (network, precision): one step time, the mean of the two


ARMS = {
    "cnn": Arm("nnU-Net CNN (nnUNetTrainer)", "nnUNetTrainer", "nnUNetTrainer_le"),
    "primus": Arm("Primus-S from scratch", "nnUNet_Primus_S_Trainer", "nnUNet_Primus_S_Trainer_le"),
    "vit": Arm("ViT-S UNETR-style, scratch", "nnUNetTrainerViT", "nnUNetTrainerViT_le"),
    "vit_patch": Arm("ViT-S patch decoder, scratch", "nnUNetTrainerViT_patchdec", "nnUNetTrainerViT_patchdec_le"),
    "mae": Arm("ViT-S UNETR-style + MAE", "nnUNetTrainerMAEFinetune", "nnUNetTrainerMAEFinetune_le", "mae",
               scratch="vit", same_network=True),
    "mae_patch": Arm("ViT-S patch decoder + MAE", "nnUNetTrainerMAEFinetune_patchdec",
                     "nnUNetTrainerMAEFinetune_patchdec_le", "mae", scratch="vit_patch",
                     same_network=True),
    "primusv3": Arm("PrimusV3-S from scratch", "nnUNet_PrimusV3S_Trainer", "nnUNet_PrimusV3S_Trainer_le",
                    gpu_only=True),
    "primusv3_mae": Arm("PrimusV3-S + MAE", "nnUNetTrainerMAEFinetune_PrimusV3S",
                        "nnUNetTrainerMAEFinetune_PrimusV3S_le", "mae_primusv3", scratch="primusv3", gpu_only=True),
}
PRETRAININGS = {"mae": Arm("ViT-S MAE pre-training", "nnUNetTrainerMAEPretrain", "nnUNetTrainerMAEPretrain_le"),
                "mae_primusv3": Arm("PrimusV3-S MAE pre-training", "nnUNetTrainerMAEPretrain_PrimusV3S",
                                    "nnUNetTrainerMAEPretrain_PrimusV3S_le")}
PROTOCOLS = {  # seconds of training per fine-tuning run / for the pre-training; epochs per run
    "cpu": {"seconds_per_arm": 180, "pretrain_seconds": 600, "epochs": 8, "val_iterations": 3, "seeds_10": 2,
            "seeds_100": 1},
    "gpu": {"seconds_per_arm": 15, "pretrain_seconds": 50, "epochs": 10, "val_iterations": 5, "seeds_10": 2,
            "seeds_100": 1},
}


def needed_pretrainings(args) -> list[Arm]:
    return [PRETRAININGS[k] for k in sorted({ARMS[a].pretraining for a in args.arms} - {None})]


def pretrained_checkpoint(args, key: str) -> Path:
    return trainer_folder(args.work / "results" / "pretraining", PRETRAININGS[key].trainer, 0) / "checkpoint_final.pth"


def planned_runs(args) -> list[tuple[str, int, str]]:
    """(fraction, seed, arm), the 10% fraction first, one seed of every arm before the next seed."""
    s = args.settings
    order = [("10%", 0)] + [("100%", 0)] * (s["seeds_100"] > 0) + [("10%", k) for k in range(1, s["seeds_10"])] + [
        ("100%", k) for k in range(1, s["seeds_100"])]
    return [(fraction, seed, arm) for fraction, seed in order for arm in args.arms]


def run_folder(args, fraction: str, seed: int, arm: str) -> Path:
    return trainer_folder(args.work / "results" / f"seed{seed}", ARMS[arm].trainer, FRACTIONS[fraction][0])
