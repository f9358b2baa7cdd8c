"""nnU-Net's real command line in subprocesses, on synthetic datasets the tests write.

Tiny trainer subclasses (a 4-block ViT of width 48, few iterations) live in tests/e2e_ext/, an extra
nnUNet_extTrainer folder;
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

E2E_TRAINERS = Path(__file__).resolve().parent / "e2e_ext"


def make_workspace(root: Path) -> dict:
    """raw/preprocessed/results folders under root; returns the environment for nnU-Net's commands."""
    for sub in ("raw", "preprocessed", "results"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "preprocessed"),
                nnUNet_results=str(root / "results"), nnUNet_def_n_proc="1", OMP_WAIT_POLICY="PASSIVE",
                nnUNet_extTrainer=os.pathsep.join([str(E2E_TRAINERS), EXT_TRAINER_DIR]))


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
