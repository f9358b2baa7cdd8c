"""Data variety through nnU-Net's real command line: every pre-training trainer (MAE, GMIM) pre-trains, its
encoder fine-tunes, and the fine-tuned model predicts, on
- CT (nnU-Net's CTNormalization), 3d_fullres, 3d_lowres and the cascade 3d_cascade_fullres;
- 4-channel MRI with strongly anisotropic spacing (3 x 0.8 x 0.8 mm) and one foreground class, 3d_fullres and 2d;
and a cross-dataset transfer: pre-trained on the CT set, fine-tuned on the 4-channel MRI set (other channels,
classes and patch: position embedding resampled, stem repeated over the channels).

The CT set is planned with a small GPU-memory target (`-gpu_memory_target 0.05`) so that nnU-Net plans a 3d_lowres
configuration and the cascade for a volume of 48 x 64 x 64 voxels. Tiny networks and budgets (tests/cli_helpers).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_mae.data import write_synthetic_dataset
from tests.cli_helpers import load, make_workspace, predict_and_check_geometry, results_folder, run, train

pytestmark = pytest.mark.slow

CT_ID, CT = 992, "Dataset992_SyntheticCT"
MRI_ID, MRI = 991, "Dataset991_SyntheticMRI4"
METHODS = {"mae": ("nnUNetTrainerMAEPretrain_e2e", "nnUNetTrainerMAEFinetune_e2e"),
           "gmim": ("nnUNetTrainerGMIMPretrain_e2e", "nnUNetTrainerGMIMFinetune_e2e")}
LABELS = {CT_ID: {0, 1, 2}, MRI_ID: {0, 1}}
NAMES = {CT_ID: CT, MRI_ID: MRI}


def merge_labels_into_one_class(dataset_folder) -> None:
    for path in [*dataset_folder.glob("labelsTr/*.nii.gz"), *dataset_folder.glob("labelsTs/*.nii.gz")]:
        image = sitk.ReadImage(str(path))
        merged = sitk.GetImageFromArray((sitk.GetArrayFromImage(image) > 0).astype(np.uint8))
        merged.CopyInformation(image)
        sitk.WriteImage(merged, str(path))
    info = json.loads((dataset_folder / "dataset.json").read_text())
    info["labels"] = {"background": 0, "organ": 1}
    (dataset_folder / "dataset.json").write_text(json.dumps(info, indent=2))


@pytest.fixture(scope="module")
def variety(tmp_path_factory):
    root = tmp_path_factory.mktemp("variety")
    env = make_workspace(root)
    write_synthetic_dataset(root / "raw", dataset_id=CT_ID, name="SyntheticCT", num_cases=6, shape=(48, 64, 64),
                            modality="CT", num_test_cases=1, seed=1)
    mri = write_synthetic_dataset(root / "raw", dataset_id=MRI_ID, name="SyntheticMRI4", num_cases=6,
                                  shape=(16, 48, 48), spacing=(3.0, 0.8, 0.8), num_channels=4, modality="MRI",
                                  num_test_cases=1, seed=2)
    merge_labels_into_one_class(mri)
    run(["nnUNetv2_plan_and_preprocess", "-d", str(CT_ID), "-c", "3d_fullres", "3d_lowres", "-np", "1", "1",
         "-gpu_memory_target", "0.05", "-overwrite_plans_name", "nnUNetPlans"], env)
    run(["nnUNetv2_plan_and_preprocess", "-d", str(MRI_ID), "-c", "3d_fullres", "2d", "-np", "1", "1"], env)
    return root, env


def plans(root, dataset_id) -> dict:
    return json.loads((root / "preprocessed" / NAMES[dataset_id] / "nnUNetPlans.json").read_text())


def ensure_trained(root, env, dataset_id, configuration, trainer, fold="all"):
    """Train unless it is there already (tests share pre-trainings); returns stdout or ''."""
    folder = results_folder(root, NAMES[dataset_id], trainer, configuration) / f"fold_{fold}"
    if (folder / "checkpoint_final.pth").is_file():
        return ""
    return train(env, dataset_id, configuration, fold, trainer).stdout


def test_plans_cover_the_variety(variety):
    root, _ = variety
    ct, mri = plans(root, CT_ID)["configurations"], plans(root, MRI_ID)["configurations"]
    assert ct["3d_fullres"]["normalization_schemes"] == ["CTNormalization"]
    assert ct["3d_cascade_fullres"]["previous_stage"] == "3d_lowres"
    assert mri["3d_fullres"]["normalization_schemes"] == ["ZScoreNormalization"] * 4
    assert mri["3d_fullres"]["spacing"][0] / mri["3d_fullres"]["spacing"][1] > 3  # anisotropic
    assert len(mri["2d"]["patch_size"]) == 2


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("dataset_id, configuration", [(CT_ID, "3d_fullres"), (CT_ID, "3d_lowres"),
                                                       (MRI_ID, "3d_fullres"), (MRI_ID, "2d")])
def test_pretrain_finetune_predict(variety, method, dataset_id, configuration):
    root, env = variety
    pretrainer, finetuner = METHODS[method]
    pretraining_log = ensure_trained(root, env, dataset_id, configuration, pretrainer)
    if method == "gmim" and pretraining_log:  # the loss terms reach the log through the steps' outputs
        assert re.search(r"train reconstruction loss [\d.]+, cross-correlation loss [-\d.]+ \(weight ", pretraining_log)
    pretrained = load(results_folder(root, NAMES[dataset_id], pretrainer, configuration) / "fold_all" /
                      "checkpoint_final.pth")["nnunet_mae"]
    config_plans = plans(root, dataset_id)["configurations"][configuration]
    assert pretrained["configuration"] == configuration
    assert pretrained["input_channels"] == (4 if dataset_id == MRI_ID else 1)
    assert pretrained["normalization_schemes"] == config_plans["normalization_schemes"]
    assert len(pretrained["token_grid"]) == len(config_plans["patch_size"])

    stdout = ensure_trained(root, env, dataset_id, configuration, finetuner, fold=0)  # validates 2 of 6 cases
    assert "Pre-trained encoder loaded from" in stdout and "0 missing, 0 incompatible" in stdout
    predict_and_check_geometry(env, root / "raw" / NAMES[dataset_id] / "imagesTs",
                               root / f"pred_{method}_{dataset_id}_{configuration}", dataset_id, configuration,
                               finetuner, 0, LABELS[dataset_id])


def test_cascade_finetunes_from_the_full_resolution_pretraining(variety):
    root, env = variety
    pretrainer, finetuner = METHODS["mae"]
    ensure_trained(root, env, CT_ID, "3d_fullres", pretrainer)
    ensure_trained(root, env, CT_ID, "3d_lowres", pretrainer)
    ensure_trained(root, env, CT_ID, "3d_lowres", finetuner)  # fold all: its validation predicts every case
    stdout = ensure_trained(root, env, CT_ID, "3d_cascade_fullres", finetuner)
    assert f"{pretrainer}__nnUNetPlans__3d_fullres/fold_all/checkpoint_final.pth" in stdout
    assert "2 channels of the previous stage's segmentation (cascade) added at zero" in stdout
    assert "0 missing, 0 incompatible" in stdout

    images = root / "raw" / CT / "imagesTs"
    lowres = predict_and_check_geometry(env, images, root / "pred_lowres", CT_ID, "3d_lowres", finetuner, "all",
                                        LABELS[CT_ID])
    predict_and_check_geometry(env, images, root / "pred_cascade", CT_ID, "3d_cascade_fullres", finetuner, "all",
                               LABELS[CT_ID], "-prev_stage_predictions", str(lowres))


def test_cross_dataset_transfer_ct_to_four_channel_mri(variety):
    """Documented route: export nnUNet_MAE_pretrained=<checkpoint of dataset A>, fine-tune on dataset B."""
    root, env = variety
    pretrainer, finetuner = METHODS["mae"]
    ensure_trained(root, env, CT_ID, "3d_fullres", pretrainer)
    checkpoint = results_folder(root, CT, pretrainer) / "fold_all" / "checkpoint_final.pth"
    result = train(dict(env, nnUNet_MAE_pretrained=str(checkpoint)), MRI_ID, "3d_fullres", 0, finetuner)
    assert f"Pre-trained encoder loaded from {checkpoint}" in result.stdout
    assert f"on {CT} 3d_fullres" in result.stdout
    assert re.search(r"adapted +encoder\.pos_embed: resampled .* \(grid \(\d+, \d+, \d+\)\) -> ", result.stdout)
    assert "1 input channel repeated over 4 and divided by 4" in result.stdout
    assert "0 missing, 0 incompatible" in result.stdout
