"""Every trainer class of the package, in one namespace (what nnU-Net's lookup sees)."""

from nnunet_mae.training.finetune_trainer import (
    nnUNetTrainerMAEFinetune,
    nnUNetTrainerMAEFinetune_5epochs,
    nnUNetTrainerMAEFinetune_50epochs,
    nnUNetTrainerMAEFinetune_250epochs,
    nnUNetTrainerMAEFinetune_bf16,
    nnUNetTrainerMAEFinetune_fp32,
    nnUNetTrainerMAEFinetune_patchdec,
    nnUNetTrainerMAEFinetune_PrimusV3B,
    nnUNetTrainerMAEFinetune_PrimusV3L,
    nnUNetTrainerMAEFinetune_PrimusV3M,
    nnUNetTrainerMAEFinetune_PrimusV3S,
    nnUNetTrainerMAEFinetune_PrimusV3S_smoke,
    nnUNetTrainerMAEFinetune_smoke,
)
from nnunet_mae.training.gmim_trainer import (
    nnUNetTrainerGMIMFinetune,
    nnUNetTrainerGMIMFinetune_5epochs,
    nnUNetTrainerGMIMFinetune_50epochs,
    nnUNetTrainerGMIMFinetune_250epochs,
    nnUNetTrainerGMIMFinetune_bf16,
    nnUNetTrainerGMIMFinetune_fp32,
    nnUNetTrainerGMIMFinetune_smoke,
    nnUNetTrainerGMIMPretrain,
    nnUNetTrainerGMIMPretrain_50epochs,
    nnUNetTrainerGMIMPretrain_250epochs,
    nnUNetTrainerGMIMPretrain_bf16,
    nnUNetTrainerGMIMPretrain_fp32,
    nnUNetTrainerGMIMPretrain_smoke,
)
from nnunet_mae.training.mae_trainer import (
    nnUNetTrainerMAEPretrain,
    nnUNetTrainerMAEPretrain_50epochs,
    nnUNetTrainerMAEPretrain_250epochs,
    nnUNetTrainerMAEPretrain_bf16,
    nnUNetTrainerMAEPretrain_fp32,
    nnUNetTrainerMAEPretrain_normpix,
    nnUNetTrainerMAEPretrain_PrimusV3B,
    nnUNetTrainerMAEPretrain_PrimusV3L,
    nnUNetTrainerMAEPretrain_PrimusV3M,
    nnUNetTrainerMAEPretrain_PrimusV3S,
    nnUNetTrainerMAEPretrain_PrimusV3S_smoke,
    nnUNetTrainerMAEPretrain_smoke,
)
from nnunet_mae.training.vit_trainer import (
    nnUNetTrainerViT,
    nnUNetTrainerViT_5epochs,
    nnUNetTrainerViT_50epochs,
    nnUNetTrainerViT_250epochs,
    nnUNetTrainerViT_B,
    nnUNetTrainerViT_bf16,
    nnUNetTrainerViT_fp32,
    nnUNetTrainerViT_patchdec,
    nnUNetTrainerViT_smoke,
    nnUNetTrainerViT_T,
    nnUNetTrainerViT_token16,
)

__all__ = sorted(name for name in dir() if name.startswith("nnUNetTrainer"))
