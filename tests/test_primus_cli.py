"""PrimusV3-S through nnU-Net's command line: MAE pre-training -> automatic fine-tuning -> predict; the same
checkpoint through nnU-Net's own nnUNet_PrimusV3S_Trainer and its strict -pretrained_weights loader."""

from __future__ import annotations

import re

import pytest

from tests.cli_helpers import load, predict_and_check_geometry, results_folder, train
from tests.conftest import DATASET, DATASET_ID

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def primus_pretrained(workspace):
    root, env = workspace
    result = train(env, DATASET_ID, "3d_fullres", "all", "nnUNetTrainerMAEPretrain_PrimusV3S_e2e")
    assert "Pre-training cases: 10 labelled training case(s)" in result.stdout
    return results_folder(root, DATASET, "nnUNetTrainerMAEPretrain_PrimusV3S_e2e") / "fold_all"


def test_primus_mae_pretraining_then_automatic_finetuning_then_predict(workspace, primus_pretrained):
    root, env = workspace
    checkpoint = load(primus_pretrained / "checkpoint_final.pth")
    assert checkpoint["nnunet_mae"]["backbone"] == "primusv3"
    assert checkpoint["nnunet_mae"]["network_kwargs"]["primus_size"] == "S"
    assert any(k.startswith("mae_decoder.") for k in checkpoint["network_weights"])
    assert list((primus_pretrained / "reconstructions").glob("epoch_*.png"))

    result = train(env, DATASET_ID, "3d_fullres", 0, "nnUNetTrainerMAEFinetune_PrimusV3S_e2e")
    assert "Pre-trained encoder loaded from" in result.stdout
    loaded = int(re.search(r"Encoder transfer: (\d+) tensors loaded", result.stdout).group(1))
    encoder = [k for k in checkpoint["network_weights"] if k.startswith(("down_projection.", "eva."))]
    assert loaded == len(encoder) and "0 missing, 0 incompatible" in result.stdout
    folder = results_folder(root, DATASET, "nnUNetTrainerMAEFinetune_PrimusV3S_e2e") / "fold_0"
    assert (folder / "validation" / "summary.json").is_file()
    predict_and_check_geometry(env, root / "raw" / DATASET / "imagesTs", root / "pred_primus", DATASET_ID,
                               "3d_fullres", "nnUNetTrainerMAEFinetune_PrimusV3S_e2e", 0, {0, 1, 2})


def test_nnunets_own_primusv3_trainer_loads_the_pretraining_checkpoint(workspace, primus_pretrained):
    root, env = workspace
    result = train(env, DATASET_ID, "3d_fullres", 1, "nnUNet_PrimusV3S_Trainer_e2e", "-pretrained_weights",
                   primus_pretrained / "checkpoint_final.pth")
    assert "Loading pretrained weights from file" in result.stdout
    assert (results_folder(root, DATASET, "nnUNet_PrimusV3S_Trainer_e2e") / "fold_1" / "validation" /
            "summary.json").is_file()


def test_a_vit_checkpoint_is_refused_by_the_primus_finetuning_with_the_fix(workspace, mae_pretrained):
    root, env = workspace
    result = train(dict(env, nnUNet_MAE_pretrained=str(mae_pretrained / "checkpoint_final.pth")), DATASET_ID,
                   "3d_fullres", 2, "nnUNetTrainerMAEFinetune_PrimusV3S_e2e", expect_ok=False)
    assert result.returncode != 0
    assert "holds a vit encoder" in result.stderr and "nnUNetTrainerMAEFinetune_PrimusV3S" in result.stderr
