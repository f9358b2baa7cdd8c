"""nnU-Net's real command line in subprocesses, on a synthetic dataset written by the test:
plan and preprocess -> train -> predict (new process) -> evaluate; MAE pre-training -> both fine-tuning
routes -> predict. Tiny networks and budgets; a few minutes on 2 CPU cores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_mae.data import write_synthetic_dataset
from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR

pytestmark = pytest.mark.slow

DATASET = "Dataset990_Synthetic"

TEST_TRAINERS = '''
import os

import torch
from nnunet_mae.training.trainers import nnUNetTrainerMAEFinetune, nnUNetTrainerMAEPretrain, nnUNetTrainerViT


class _Tiny:
    @classmethod
    def vit_dimensions(cls):
        return {"embed_dim": 48, "depth": 4, "num_heads": 4}

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 3
        self.num_val_iterations_per_epoch = 2


class nnUNetTrainerViT_e2e(_Tiny, nnUNetTrainerViT):
    pass


class nnUNetTrainerViT_e2e_resume(_Tiny, nnUNetTrainerViT):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ["E2E_EPOCHS"])


class nnUNetTrainerMAEPretrain_e2e(_Tiny, nnUNetTrainerMAEPretrain):
    mae_decoder_dim = 32
    mae_decoder_heads = 4
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_e2e"


class nnUNetTrainerMAEFinetune_e2e(_Tiny, nnUNetTrainerMAEFinetune):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_e2e"


class nnUNetTrainerMAEFinetune_e2e_unpretrained(nnUNetTrainerMAEFinetune_e2e):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_never_run"
'''


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet")
    for sub in ("raw", "preprocessed", "results", "ext"):
        (root / sub).mkdir()
    (root / "ext" / "e2e_trainers.py").write_text(TEST_TRAINERS)
    write_synthetic_dataset(root / "raw", dataset_id=990, num_cases=10, shape=(24, 32, 24), num_test_cases=2, seed=3)
    # one nnU-Net worker process and sleeping OpenMP threads: a small CPU is not swamped by idle spinners
    env = dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "preprocessed"),
               nnUNet_results=str(root / "results"), nnUNet_def_n_proc="1", OMP_WAIT_POLICY="PASSIVE",
               nnUNet_extTrainer=os.pathsep.join([str(root / "ext"), EXT_TRAINER_DIR]))
    run(["nnUNetv2_plan_and_preprocess", "-d", "990", "-c", "3d_fullres", "-np", "1", "--verify_dataset_integrity"],
        env)
    return root, env


def run(command: list[str], env: dict, expect_ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if expect_ok and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-5000:]}")
    return result


def results_folder(root: Path, trainer: str) -> Path:
    return root / "results" / DATASET / f"{trainer}__nnUNetPlans__3d_fullres"


def train(env, trainer, fold, *extra, expect_ok=True):
    # nnUNet_n_proc_DA=0: data augmentation in the main process (no worker start-up on a small CPU)
    return run(["nnUNetv2_train", "990", "3d_fullres", str(fold), "-tr", trainer, "-device", "cpu", *extra],
               dict(env, nnUNet_n_proc_DA="0"), expect_ok)


def predict_and_check_geometry(root, env, trainer, fold, out_name) -> Path:
    out = root / out_name
    run(["nnUNetv2_predict", "-i", str(root / "raw" / DATASET / "imagesTs"), "-o", str(out), "-d", "990", "-c",
         "3d_fullres", "-tr", trainer, "-f", str(fold), "-device", "cpu", "--disable_progress_bar", "-npp", "0",
         "-nps", "0"], env)
    for image in sorted((root / "raw" / DATASET / "imagesTs").glob("*_0000.nii.gz")):
        reference = sitk.ReadImage(str(image))
        prediction = sitk.ReadImage(str(out / image.name.replace("_0000", "")))
        assert prediction.GetSize() == reference.GetSize()
        assert np.allclose(prediction.GetSpacing(), reference.GetSpacing())
        assert np.allclose(prediction.GetOrigin(), reference.GetOrigin())
        assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2}
    return out


def test_vit_trains_predicts_and_evaluates(workspace):
    root, env = workspace
    train(env, "nnUNetTrainerViT_e2e", 0)
    folder = results_folder(root, "nnUNetTrainerViT_e2e")
    checkpoint = torch.load(folder / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["nnunet_mae"]["token_grid"] == tuple(s // 8 for s in checkpoint["nnunet_mae"]["patch_size"])
    plans = json.loads((folder / "plans.json").read_text())
    assert all(s % 8 == 0 for s in plans["configurations"]["3d_fullres"]["patch_size"])
    assert (folder / "fold_0" / "validation" / "summary.json").is_file()  # nnU-Net's own validation ran

    predict_and_check_geometry(root, env, "nnUNetTrainerViT_e2e", 0, "pred_vit")
    # evaluate on two training cases against their labels, with nnU-Net's evaluator
    images, labels = root / "eval_images", root / "eval_labels"
    images.mkdir()
    labels.mkdir()
    for case in ("case_000", "case_001"):
        shutil.copy(root / "raw" / DATASET / "imagesTr" / f"{case}_0000.nii.gz", images)
        shutil.copy(root / "raw" / DATASET / "labelsTr" / f"{case}.nii.gz", labels)
    out = root / "pred_eval"
    run(["nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", "990", "-c", "3d_fullres", "-tr",
         "nnUNetTrainerViT_e2e", "-f", "0", "-device", "cpu", "--disable_progress_bar", "-npp", "0", "-nps", "0"], env)
    run(["nnUNetv2_evaluate_simple", str(labels), str(out), "-l", "1", "2"], env)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}
    assert all(0.0 <= summary["mean"][k]["Dice"] <= 1.0 for k in ("1", "2"))


def test_mae_pretraining_feeds_both_finetuning_routes(workspace):
    root, env = workspace
    train(env, "nnUNetTrainerMAEPretrain_e2e", "all")
    fold_all = results_folder(root, "nnUNetTrainerMAEPretrain_e2e") / "fold_all"
    checkpoint_file = fold_all / "checkpoint_final.pth"
    metadata = torch.load(checkpoint_file, map_location="cpu", weights_only=False)["nnunet_mae"]
    assert metadata["masking"] == {"type": "random", "mask_ratio": 0.75, "normalize_targets": False}
    assert list((fold_all / "reconstructions").glob("epoch_*.png"))
    assert (fold_all / "progress.png").is_file()
    assert not (fold_all / "validation").exists()  # segmentation validation is skipped

    result = train(env, "nnUNetTrainerMAEFinetune_e2e", 0)
    assert "Pre-trained encoder loaded from" in result.stdout and "0 missing, 0 incompatible" in result.stdout
    predict_and_check_geometry(root, env, "nnUNetTrainerMAEFinetune_e2e", 0, "pred_finetune")
    # nnU-Net's model selection and export work on the fine-tuned model
    run(["nnUNetv2_find_best_configuration", "990", "-c", "3d_fullres", "-tr", "nnUNetTrainerMAEFinetune_e2e", "-f",
         "0", "--disable_ensembling"], env)
    inference_info = root / "results" / DATASET / "inference_information.json"
    assert json.loads(inference_info.read_text())["best_model_or_ensemble"]["selected_model_or_models"][0][
        "trainer"] == "nnUNetTrainerMAEFinetune_e2e"
    run(["nnUNetv2_export_model_to_zip", "-d", "990", "-o", str(root / "model.zip"), "-c", "3d_fullres", "-tr",
         "nnUNetTrainerMAEFinetune_e2e", "-f", "0"], env)
    with zipfile.ZipFile(root / "model.zip") as archive:
        names = archive.namelist()
    assert any(n.endswith("fold_0/checkpoint_final.pth") for n in names) and any(n.endswith("plans.json") for n in names)

    # the nnU-Net way: stock trainer + stock -pretrained_weights loader
    result = train(env, "nnUNetTrainerViT_e2e", 1, "-pretrained_weights", str(checkpoint_file))
    assert "Loading pretrained weights from file" in result.stdout


def test_finetuning_without_pretraining_names_the_command(workspace):
    root, env = workspace
    result = train(env, "nnUNetTrainerMAEFinetune_e2e_unpretrained", 0, expect_ok=False)
    assert result.returncode != 0
    assert "nnUNetv2_train Dataset990_Synthetic 3d_fullres all -tr nnUNetTrainerMAEPretrain_never_run" in result.stderr
    assert "nnUNet_MAE_pretrained" in result.stderr


def test_interrupted_training_resumes_with_c(workspace):
    root, env = workspace
    fold = results_folder(root, "nnUNetTrainerViT_e2e_resume") / "fold_0"
    train(dict(env, E2E_EPOCHS="1"), "nnUNetTrainerViT_e2e_resume", 0)
    # an interrupted run leaves checkpoint_latest.pth, not checkpoint_final.pth
    (fold / "checkpoint_final.pth").rename(fold / "checkpoint_latest.pth")
    first = torch.load(fold / "checkpoint_latest.pth", map_location="cpu", weights_only=False)
    result = train(dict(env, E2E_EPOCHS="2"), "nnUNetTrainerViT_e2e_resume", 0, "--c")
    assert "Epoch 1" in result.stdout and "Epoch 0\n" not in result.stdout
    resumed = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert first["current_epoch"] == 1 and resumed["current_epoch"] == 2
    assert resumed["logging"]["train_losses"][0] == first["logging"]["train_losses"][0]  # epoch 0 log kept
    assert len(resumed["logging"]["train_losses"]) == 2
    assert resumed["optimizer_state"]["state"]  # optimiser moments restored and carried on
