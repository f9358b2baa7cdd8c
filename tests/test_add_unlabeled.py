"""`nnunet_mae add_unlabeled` on a real planned dataset: same preprocessing as nnU-Net's labelled cases, clear
rejections, resumable; the pre-training uses the extra cases and nnU-Net's segmentation training does not."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import SimpleITK as sitk
import pytest
from batchgenerators.utilities.file_and_folder_operations import load_pickle

from nnunet_mae.data import write_synthetic_dataset
from nnunet_mae.data.unlabeled import unlabeled_identifiers
from tests.cli_helpers import run, train

pytestmark = pytest.mark.slow

DATASET_ID, DATASET, OTHER_ID, OTHER = 993, "Dataset993_Unl", 994, "Dataset994_Pool"


@pytest.fixture(scope="module")
def planned(workspace):
    root, env = workspace
    write_synthetic_dataset(root / "raw", dataset_id=DATASET_ID, name="Unl", num_cases=6, shape=(24, 32, 24),
                            num_test_cases=3, seed=5)
    write_synthetic_dataset(root / "raw", dataset_id=OTHER_ID, name="Pool", num_cases=4, shape=(28, 30, 26), seed=6)
    run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres", "-np", "1"], env)
    return root, env, root / "preprocessed" / DATASET / "nnUNetPlans_3d_fullres"


def add(env, *args, expect_ok=True):
    return run(["nnunet_mae", "add_unlabeled", "-d", str(DATASET_ID), "-np", "1", *args], env, expect_ok)


def test_when_every_case_is_rejected_it_fails_and_leaves_nothing(planned, tmp_path):
    """Runs first (the module's unlabeled folder does not exist yet)."""
    root, env, labelled = planned
    unlabeled = labelled.with_name(labelled.name + "_unlabeled")
    assert not unlabeled.exists()
    good = root / "raw" / DATASET / "imagesTr" / "case_002_0000.nii.gz"
    folder = tmp_path / "twochannels"
    folder.mkdir()
    shutil.copy(good, folder / "a_0000.nii.gz")
    shutil.copy(good, folder / "a_0001.nii.gz")
    result = add(env, "-i", str(folder), expect_ok=False)
    assert result.returncode == 1
    assert "0 case(s) added, 0 skipped (already there), 1 rejected" in result.stdout
    assert "No case was added: every one was rejected" in result.stderr and "now uses" not in result.stdout
    assert not unlabeled.exists()


def test_same_preprocessing_as_nnunet_labelled_cases(planned, tmp_path):
    root, env, labelled = planned
    images = tmp_path / "copies"
    images.mkdir()
    for f in sorted((root / "raw" / DATASET / "imagesTr").glob("case_00[01]_0000.nii.gz")):
        shutil.copy(f, images / f.name.replace("case_", "copy_"))
    add(env, "-i", str(images))
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    unlabeled = labelled.with_name(labelled.name + "_unlabeled")
    for i in ("000", "001"):
        ours, _, _, ours_props = nnUNetDatasetBlosc2(str(unlabeled), [f"copy_{i}"]).load_case(f"copy_{i}")
        theirs, _, _, theirs_props = nnUNetDatasetBlosc2(str(labelled), [f"case_{i}"]).load_case(f"case_{i}")
        np.testing.assert_array_equal(np.asarray(ours[:]), np.asarray(theirs[:]))
        for key in ("spacing", "shape_before_cropping", "bbox_used_for_cropping"):
            assert np.array_equal(np.asarray(ours_props[key]), np.asarray(theirs_props[key])), key
    assert sorted(p.name for p in labelled.glob("copy_*")) == []  # nnU-Net's folder is untouched


def test_bad_inputs_are_rejected_by_name_and_reason(planned, tmp_path):
    root, env, _ = planned
    good = root / "raw" / DATASET / "imagesTr" / "case_002_0000.nii.gz"
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(good, folder / "fine_0000.nii.gz")
    shutil.copy(good, folder / "twochan_0000.nii.gz")
    shutil.copy(good, folder / "twochan_0001.nii.gz")
    shutil.copy(good, folder / "nochannel.nii.gz")
    shutil.copy(good, folder / "wrongend_0000.nii")
    (folder / "broken_0000.nii.gz").write_bytes(b"not an image")
    whole = good.read_bytes()
    (folder / "truncated_0000.nii.gz").write_bytes(whole[:len(whole) // 2])  # a copy cut short
    image = sitk.ReadImage(str(good))
    voxels = sitk.GetArrayFromImage(image).astype(np.float32)
    voxels.flat[::97] = np.nan
    nan_image = sitk.GetImageFromArray(voxels)
    nan_image.CopyInformation(image)
    sitk.WriteImage(nan_image, str(folder / "withnan_0000.nii.gz"))
    result = add(env, "-i", str(folder))
    out = result.stdout
    assert "1 case(s) added, 0 skipped (already there), 6 rejected" in out
    assert re.search(r"truncated_0000.nii.gz \(case truncated\): truncated_0000.nii.gz is not a complete gzip",
                     out)
    assert re.search(r"withnan_0000.nii.gz \(case withnan\): has \d+ NaN or inf voxel\(s\) in the image file", out)
    assert re.search(r"twochan: has channel files _0000, _0001; the dataset has 1 channel", out)
    assert re.search(r"nochannel.nii.gz: name is not <case>_<XXXX>.nii.gz", out)
    assert re.search(r"wrongend_0000.nii: file ending is not the dataset's '.nii.gz'", out)
    assert re.search(r"broken_0000.nii.gz \(case broken\): broken_0000.nii.gz is not a complete gzip file", out)
    missing = add(env, "-i", str(tmp_path / "nowhere"), expect_ok=False)
    assert missing.returncode != 0 and "nowhere is not a folder" in missing.stderr


def test_interrupted_run_resumes_and_imagesTs_are_added(planned):
    root, env, labelled = planned
    unlabeled = labelled.with_name(labelled.name + "_unlabeled")
    add(env, "--include_imagesTs")
    test_cases = {"case_006", "case_007", "case_008"}
    assert test_cases <= set(unlabeled_identifiers(unlabeled))
    # an interrupted run: one case half-written (no .pkl yet) and a temporary folder left behind
    (unlabeled / "case_007.pkl").unlink()
    (unlabeled / ".tmp-4242-case_007").mkdir()
    out = add(env, "--include_imagesTs").stdout
    assert "1 case(s) added, 2 skipped (already there), 0 rejected" in out
    assert not list(unlabeled.glob(".tmp-*")) and "case_007" in unlabeled_identifiers(unlabeled)
    # other plans (same preprocessing folder here): the hint names them
    plans = json.loads((labelled.parent / "nnUNetPlans.json").read_text())
    (labelled.parent / "nnUNetPlansCopy.json").write_text(json.dumps({**plans, "plans_name": "nnUNetPlansCopy"}))
    hint = add(env, "--include_imagesTs", "-p", "nnUNetPlansCopy").stdout
    assert f"nnUNetv2_train {DATASET} 3d_fullres all -tr nnUNetTrainerMAEPretrain -p nnUNetPlansCopy" in hint


def test_other_dataset_images_in_this_dataset_plans(planned):
    root, env, labelled = planned
    other_json = root / "raw" / OTHER / "dataset.json"
    other_json.write_text(json.dumps({**json.loads(other_json.read_text()), "channel_names": {"0": "CT"}}))
    out = add(env, "--from_dataset", str(OTHER_ID)).stdout
    assert "4 case(s) added" in out
    assert re.search(r"Warning: Dataset994_Pool's channels are \['CT'\], Dataset993_Unl's are \['MRI'\]", out)
    unlabeled = labelled.with_name(labelled.name + "_unlabeled")
    props = load_pickle(str(unlabeled / f"{OTHER}__case_000.pkl"))
    assert np.allclose(props["spacing"], load_pickle(str(labelled / "case_000.pkl"))["spacing"])


def test_pretraining_uses_them_and_segmentation_training_does_not(planned):
    root, env, labelled = planned
    unlabeled = labelled.with_name(labelled.name + "_unlabeled")
    extra = len(unlabeled_identifiers(unlabeled))
    assert extra >= 3
    pretrain = train(env, DATASET_ID, "3d_fullres", "all", "nnUNetTrainerMAEPretrain_e2e")
    assert (f"Pre-training cases: 6 labelled training case(s) + {extra} unlabeled case(s) from {unlabeled}; "
            f"validation: 6 labelled case(s)") in pretrain.stdout
    seg = train(env, DATASET_ID, "3d_fullres", 0, "nnUNetTrainerViT_e2e")
    match = re.search(r"This split has (\d+) training and (\d+) validation cases", seg.stdout)
    assert match and (int(match[1]), int(match[2])) == (4, 2)  # nnU-Net's 5-fold split of the 6 labelled cases
