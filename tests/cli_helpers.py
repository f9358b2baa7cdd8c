"""nnU-Net's real command line in subprocesses, on synthetic datasets the tests write.

Tiny trainer subclasses (a 4-block ViT of width 48, few iterations) live in an extra nnUNet_extTrainer folder;
one nnU-Net worker process and sleeping OpenMP threads keep a 2-core CPU usable.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR

TEST_TRAINERS = '''
import os
import time
from pathlib import Path

import torch
from nnunetv2.training.nnUNetTrainer.primus.primus_trainers import nnUNet_PrimusV3S_Trainer
from nnunet_mae.training.trainers import (nnUNetTrainerGMIMFinetune, nnUNetTrainerGMIMPretrain,
                                          nnUNetTrainerMAEFinetune, nnUNetTrainerMAEFinetune_PrimusV3S,
                                          nnUNetTrainerMAEPretrain, nnUNetTrainerMAEPretrain_PrimusV3S,
                                          nnUNetTrainerViT)


class _Tiny:
    mae_decoder_dim = 32
    mae_decoder_heads = 4
    projector_hidden_dim = 64
    projector_dim = 32

    @classmethod
    def vit_dimensions(cls):
        return {"embed_dim": 48, "depth": 4, "num_heads": 4}

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 3
        self.num_val_iterations_per_epoch = 2

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """No mirroring (as nnU-Net's nnUNetTrainerNoMirroring): 8x fewer sliding-window passes in validation and
        prediction, which dominate these tiny runs."""
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None


class _Resumable(_Tiny):
    """E2E_EPOCHS epochs (default 3), a checkpoint after every epoch. E2E_HANG_AT_EPOCH=k: in the second iteration
    of epoch k, touch E2E_READY_FILE and hang (the test kills the process there). E2E_NAN_AT_EPOCH=k: NaN input."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get("E2E_EPOCHS", "3"))
        self.save_every = 1

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
'''


def make_workspace(root: Path) -> dict:
    """raw/preprocessed/results/ext folders under root; returns the environment for nnU-Net's commands."""
    for sub in ("raw", "preprocessed", "results", "ext"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "ext" / "e2e_trainers.py").write_text(TEST_TRAINERS)
    return dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "preprocessed"),
                nnUNet_results=str(root / "results"), nnUNet_def_n_proc="1", OMP_WAIT_POLICY="PASSIVE",
                nnUNet_extTrainer=os.pathsep.join([str(root / "ext"), EXT_TRAINER_DIR]))


def run(command: list[str], env: dict, expect_ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], env=env, capture_output=True, text=True, timeout=900)
    if expect_ok and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-5000:]}")
    return result


def train_command(dataset: int, configuration: str, fold, trainer: str, *extra) -> list[str]:
    return ["nnUNetv2_train", str(dataset), configuration, str(fold), "-tr", trainer, "-device", "cpu", *extra]


def train(env, dataset, configuration, fold, trainer, *extra, expect_ok=True) -> subprocess.CompletedProcess:
    # nnUNet_n_proc_DA=0: data augmentation in the main process (no worker start-up on a small CPU)
    return run(train_command(dataset, configuration, fold, trainer, *extra), dict(env, nnUNet_n_proc_DA="0"),
               expect_ok)


def results_folder(root: Path, dataset_name: str, trainer: str, configuration: str = "3d_fullres") -> Path:
    return root / "results" / dataset_name / f"{trainer}__nnUNetPlans__{configuration}"


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def predict_and_check_geometry(env, images: Path, out: Path, dataset: int, configuration: str, trainer: str, fold,
                               labels: set[int], *extra) -> Path:
    """nnUNetv2_predict in a new process; every output has its input's size, spacing and origin."""
    run(["nnUNetv2_predict", "-i", images, "-o", out, "-d", str(dataset), "-c", configuration, "-tr", trainer, "-f",
         str(fold), "-device", "cpu", "--disable_progress_bar", "-npp", "0", "-nps", "0", *extra], env)
    inputs = sorted(images.glob("*_0000.nii.gz"))
    assert inputs
    for image in inputs:
        reference = sitk.ReadImage(str(image))
        prediction = sitk.ReadImage(str(out / image.name.replace("_0000", "")))
        assert prediction.GetSize() == reference.GetSize()
        assert np.allclose(prediction.GetSpacing(), reference.GetSpacing())
        assert np.allclose(prediction.GetOrigin(), reference.GetOrigin())
        assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= labels
    return out
