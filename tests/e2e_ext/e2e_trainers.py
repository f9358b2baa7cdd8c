"""Tiny trainer variants for the command-line tests (an nnUNet_extTrainer folder: nnU-Net finds them by name).

A 4-block ViT of width 48, few iterations, no test-time mirroring; `_resume` variants that hang or feed NaN on
request (environment variables) for the crash and resume tests.
"""

import os
import time
from pathlib import Path

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.primus.primus_trainers import nnUNet_PrimusV3S_Trainer

from nnunet_mae.training.reliability import Reliability
from nnunet_mae.training.schedules import Schedule
from nnunet_mae.training.trainers import (nnUNetTrainerGMIMFinetune, nnUNetTrainerGMIMPretrain,
                                          nnUNetTrainerMAEFinetune, nnUNetTrainerMAEFinetune_CNN,
                                          nnUNetTrainerMAEFinetune_PrimusV3S, nnUNetTrainerMAEPretrain,
                                          nnUNetTrainerMAEPretrain_CNN, nnUNetTrainerMAEPretrain_PrimusV3S,
                                          nnUNetTrainerViT)


class _Tiny(Schedule):
    num_epochs, iterations, val_iterations = 2, 3, 2
    mae_decoder_dim = 32
    mae_decoder_heads = 4
    projector_hidden_dim = 64
    projector_dim = 32

    @classmethod
    def vit_dimensions(cls):
        return {"embed_dim": 48, "depth": 4, "num_heads": 4}

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """No mirroring (as nnU-Net's nnUNetTrainerNoMirroring): 8x fewer sliding-window passes in validation and
        prediction, which dominate these tiny runs."""
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None


class _Resumable(_Tiny):
    """E2E_EPOCHS epochs (default 3), a checkpoint (and for pre-training a probe) after every epoch.
    E2E_HANG_AT_EPOCH=k: in the second iteration of epoch k, touch E2E_READY_FILE and hang (the test kills the
    process there). E2E_NAN_AT_EPOCH=k: NaN input."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get("E2E_EPOCHS", "3"))
        self.save_every = 1
        if hasattr(self, "probe_every"):  # pre-training: a probe after every epoch (the resume test reads them)
            self.probe_every = 1

    def train_step(self, batch):
        if os.environ.get("E2E_HANG_AT_EPOCH") == str(self.current_epoch) and self._epoch_iteration == 1:
            Path(os.environ["E2E_READY_FILE"]).touch()
            time.sleep(900)
        if os.environ.get("E2E_NAN_AT_EPOCH") == str(self.current_epoch):
            batch = dict(batch, data=batch["data"] * float("nan"))
        return super().train_step(batch)


class nnUNetTrainerViT_e2e(_Tiny, nnUNetTrainerViT):
    pass


class nnUNetTrainerMAEPretrain_e2e(_Tiny, nnUNetTrainerMAEPretrain):
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_e2e"


class nnUNetTrainerMAEFinetune_e2e(_Tiny, nnUNetTrainerMAEFinetune):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_e2e"


class nnUNetTrainerGMIMPretrain_e2e(_Tiny, nnUNetTrainerGMIMPretrain):
    finetune_trainer_name = "nnUNetTrainerGMIMFinetune_e2e"


class nnUNetTrainerGMIMFinetune_e2e(_Tiny, nnUNetTrainerGMIMFinetune):
    pretrain_trainer_name = "nnUNetTrainerGMIMPretrain_e2e"


class nnUNetTrainerMAEPretrain_PrimusV3S_e2e(_Tiny, nnUNetTrainerMAEPretrain_PrimusV3S):
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_PrimusV3S_e2e"


class nnUNetTrainerMAEFinetune_PrimusV3S_e2e(_Tiny, nnUNetTrainerMAEFinetune_PrimusV3S):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_PrimusV3S_e2e"


class nnUNet_PrimusV3S_Trainer_e2e(_Tiny, nnUNet_PrimusV3S_Trainer):
    pass


class nnUNetTrainerMAEPretrain_CNN_e2e(_Tiny, nnUNetTrainerMAEPretrain_CNN):
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_CNN_e2e"


class nnUNetTrainerMAEFinetune_CNN_e2e(_Tiny, nnUNetTrainerMAEFinetune_CNN):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_CNN_e2e"


class nnUNetTrainer_e2e(_Tiny, nnUNetTrainer):
    pass


class nnUNetTrainerReliable_e2e(Reliability, nnUNetTrainer_e2e):
    """nnU-Net's own trainer with this package's reliability room in front (tests/training/test_reliability.py)."""


class nnUNetTrainerMAEFinetune_e2e_unpretrained(nnUNetTrainerMAEFinetune_e2e):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_never_run"


class nnUNetTrainerViT_e2e_resume(_Resumable, nnUNetTrainerViT_e2e):
    pass


class nnUNetTrainerMAEPretrain_e2e_resume(_Resumable, nnUNetTrainerMAEPretrain_e2e):
    pass


class nnUNetTrainerGMIMPretrain_e2e_resume(_Resumable, nnUNetTrainerGMIMPretrain_e2e):
    pass


class nnUNetTrainerMAEFinetune_e2e_resume(_Resumable, nnUNetTrainerMAEFinetune_e2e):
    pass
