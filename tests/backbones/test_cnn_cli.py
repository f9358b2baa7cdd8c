"""The CNN MAE through nnU-Net's command line with the ResEnc M plans (the three commands of the README): MAE
pre-training -> nnU-Net's own trainer with -pretrained_weights, and the automatic fine-tuner -> predict."""

from __future__ import annotations

import re

import pytest

from tests.cli_helpers import load, predict_and_check_geometry, run, train
from tests.conftest import DATASET, DATASET_ID

pytestmark = pytest.mark.slow
PLANS = "nnUNetResEncUNetMPlans"


def _folder(root, trainer, fold):
    return root / "results" / DATASET / f"{trainer}__{PLANS}__3d_fullres" / f"fold_{fold}"


@pytest.fixture(scope="module")
def cnn_pretrained(workspace):
    root, env = workspace
    run(["nnUNetv2_plan_experiment", "-d", DATASET_ID, "-pl", "nnUNetPlannerResEncM"], env)
    result = train(env, DATASET_ID, "3d_fullres", "all", "nnUNetTrainerMAEPretrain_CNN_e2e", "-p", PLANS)
    assert "Pre-training cases: 10 labelled training case(s)" in result.stdout
    return _folder(root, "nnUNetTrainerMAEPretrain_CNN_e2e", "all")


def test_nnunets_own_trainer_loads_the_cnn_pretraining_checkpoint(workspace, cnn_pretrained):
    root, env = workspace
    checkpoint = load(cnn_pretrained / "checkpoint_final.pth")
    assert checkpoint["nnunet_mae"]["backbone"] == "cnn"
    assert checkpoint["nnunet_mae"]["network_kwargs"]["network_class"].endswith("ResidualEncoderUNet")
    assert list((cnn_pretrained / "reconstructions").glob("epoch_*.png"))
    result = train(env, DATASET_ID, "3d_fullres", 0, "nnUNetTrainer_e2e", "-p", PLANS, "-pretrained_weights",
                   cnn_pretrained / "checkpoint_final.pth")
    assert "Loading pretrained weights from file" in result.stdout
    assert (_folder(root, "nnUNetTrainer_e2e", 0) / "validation" / "summary.json").is_file()


def test_automatic_cnn_finetuning_loads_every_encoder_tensor_then_predicts(workspace, cnn_pretrained):
    root, env = workspace
    weights = load(cnn_pretrained / "checkpoint_final.pth")["network_weights"]
    result = train(env, DATASET_ID, "3d_fullres", 1, "nnUNetTrainerMAEFinetune_CNN_e2e", "-p", PLANS)
    assert "Pre-trained encoder loaded from" in result.stdout
    loaded = int(re.search(r"Encoder transfer: (\d+) tensors loaded", result.stdout).group(1))
    assert loaded == len([k for k in weights if k.startswith("encoder.")])
    assert "0 missing, 0 incompatible" in result.stdout
    assert (_folder(root, "nnUNetTrainerMAEFinetune_CNN_e2e", 1) / "validation" / "summary.json").is_file()
    predict_and_check_geometry(env, root / "raw" / DATASET / "imagesTs", root / "pred_cnn", DATASET_ID, "3d_fullres",
                               "nnUNetTrainerMAEFinetune_CNN_e2e", 1, {0, 1, 2}, "-p", PLANS)


def test_the_plain_unet_pretraining_is_refused_by_the_resenc_finetuning_naming_the_fix(workspace, cnn_pretrained):
    root, env = workspace
    plain = train(env, DATASET_ID, "3d_fullres", "all", "nnUNetTrainerMAEPretrain_CNN_e2e")  # nnUNetPlans
    assert plain.returncode == 0
    checkpoint = root / "results" / DATASET / "nnUNetTrainerMAEPretrain_CNN_e2e__nnUNetPlans__3d_fullres" / \
        "fold_all" / "checkpoint_final.pth"
    result = train(dict(env, nnUNet_MAE_pretrained=str(checkpoint)), DATASET_ID, "3d_fullres", 2,
                   "nnUNetTrainerMAEFinetune_CNN_e2e", "-p", PLANS, expect_ok=False)
    assert result.returncode != 0
    assert "pre-train with these plans" in result.stderr and f"-p {PLANS}" in result.stderr
    assert not (_folder(root, "nnUNetTrainerMAEFinetune_CNN_e2e", 2) / "checkpoint_latest.pth").exists()
