"""The folder nnU-Net's trainer lookup searches (`nnUNet_extTrainer`). It holds re-exports only.

The installed `nnunet_mae_ext.pth` calls `register_with_nnunet()` at interpreter start, which appends
this folder to `nnUNet_extTrainer`, so `nnUNetv2_train -tr nnUNetTrainerViT` works in a new shell
with no set-up. It must stay cheap: no torch or nnU-Net import here.
"""

import os

EXT_TRAINER_DIR = os.path.dirname(os.path.abspath(__file__))
PTH_NAME = "nnunet_mae_ext.pth"  # installed into site-packages by setup.py


def register_with_nnunet() -> None:
    current = os.environ.get("nnUNet_extTrainer", "")
    paths = [p for p in current.split(os.pathsep) if p]
    if EXT_TRAINER_DIR not in paths:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join(paths + [EXT_TRAINER_DIR])
