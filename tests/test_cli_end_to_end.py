"""nnU-Net's real command line in subprocesses, on a synthetic dataset written by the test:
plan and preprocess -> train -> predict (new process) -> evaluate; MAE pre-training -> both fine-tuning
routes -> predict. Tiny networks and budgets; a few minutes on 2 CPU cores."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest

from tests.cli_helpers import load, predict_and_check_geometry, results_folder, run, train
from tests.conftest import DATASET, DATASET_ID

pytestmark = pytest.mark.slow


def test_vit_trains_predicts_and_evaluates(workspace):
    root, env = workspace
    train(env, DATASET_ID, "3d_fullres", 0, "nnUNetTrainerViT_e2e")
    folder = results_folder(root, DATASET, "nnUNetTrainerViT_e2e")
    checkpoint = load(folder / "fold_0" / "checkpoint_final.pth")
    assert checkpoint["nnunet_mae"]["token_grid"] == tuple(s // 8 for s in checkpoint["nnunet_mae"]["patch_size"])
    plans = json.loads((folder / "plans.json").read_text())
    assert all(s % 8 == 0 for s in plans["configurations"]["3d_fullres"]["patch_size"])
    assert (folder / "fold_0" / "validation" / "summary.json").is_file()  # nnU-Net's own validation ran

    predict_and_check_geometry(env, root / "raw" / DATASET / "imagesTs", root / "pred_vit", DATASET_ID, "3d_fullres",
                               "nnUNetTrainerViT_e2e", 0, {0, 1, 2})
    # evaluate on two training cases against their labels, with nnU-Net's evaluator
    images, labels = root / "eval_images", root / "eval_labels"
    images.mkdir()
    labels.mkdir()
    for case in ("case_000", "case_001"):
        shutil.copy(root / "raw" / DATASET / "imagesTr" / f"{case}_0000.nii.gz", images)
        shutil.copy(root / "raw" / DATASET / "labelsTr" / f"{case}.nii.gz", labels)
    out = predict_and_check_geometry(env, images, root / "pred_eval", DATASET_ID, "3d_fullres",
                                     "nnUNetTrainerViT_e2e", 0, {0, 1, 2})
    run(["nnUNetv2_evaluate_simple", labels, out, "-l", "1", "2"], env)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}
    assert all(0.0 <= summary["mean"][k]["Dice"] <= 1.0 for k in ("1", "2"))


def test_mae_pretraining_feeds_both_finetuning_routes(workspace, mae_pretrained):
    root, env = workspace
    checkpoint_file = mae_pretrained / "checkpoint_final.pth"
    metadata = load(checkpoint_file)["nnunet_mae"]
    assert metadata["masking"] == {"type": "random", "mask_ratio": 0.75, "normalize_targets": False,
                                   "loss_on_visible": True, "uniformity_weight": 0.0}
    assert list((mae_pretrained / "reconstructions").glob("epoch_*.png"))
    assert (mae_pretrained / "progress.png").is_file()
    assert not (mae_pretrained / "validation").exists()  # segmentation validation is skipped

    result = train(env, DATASET_ID, "3d_fullres", 0, "nnUNetTrainerMAEFinetune_e2e")
    assert "Pre-trained encoder loaded from" in result.stdout and "0 missing, 0 incompatible" in result.stdout
    predict_and_check_geometry(env, root / "raw" / DATASET / "imagesTs", root / "pred_finetune", DATASET_ID,
                               "3d_fullres", "nnUNetTrainerMAEFinetune_e2e", 0, {0, 1, 2})
    # nnU-Net's model selection and export work on the fine-tuned model
    run(["nnUNetv2_find_best_configuration", str(DATASET_ID), "-c", "3d_fullres", "-tr",
         "nnUNetTrainerMAEFinetune_e2e", "-f", "0", "--disable_ensembling"], env)
    inference_info = root / "results" / DATASET / "inference_information.json"
    assert json.loads(inference_info.read_text())["best_model_or_ensemble"]["selected_model_or_models"][0][
        "trainer"] == "nnUNetTrainerMAEFinetune_e2e"
    run(["nnUNetv2_export_model_to_zip", "-d", str(DATASET_ID), "-o", root / "model.zip", "-c", "3d_fullres", "-tr",
         "nnUNetTrainerMAEFinetune_e2e", "-f", "0"], env)
    with zipfile.ZipFile(root / "model.zip") as archive:
        names = archive.namelist()
    assert any(n.endswith("fold_0/checkpoint_final.pth") for n in names)
    assert any(n.endswith("plans.json") for n in names)

    # the nnU-Net way: stock trainer + stock -pretrained_weights loader
    result = train(env, DATASET_ID, "3d_fullres", 1, "nnUNetTrainerViT_e2e", "-pretrained_weights", checkpoint_file)
    assert "Loading pretrained weights from file" in result.stdout


def test_finetuning_without_pretraining_names_the_command(workspace):
    root, env = workspace
    result = train(env, DATASET_ID, "3d_fullres", 0, "nnUNetTrainerMAEFinetune_e2e_unpretrained", expect_ok=False)
    assert result.returncode != 0
    assert "nnUNetv2_train Dataset990_Synthetic 3d_fullres all -tr nnUNetTrainerMAEPretrain_never_run" in result.stderr
    assert "nnUNet_MAE_pretrained" in result.stderr
