"""Collecting unlabeled cases (names, channels, endings) and the case view, without preprocessing."""

import os

import pytest

from nnunet_mae.data.case_view import case_view
from nnunet_mae.data.unlabeled import collect_cases, unlabeled_folder, unlabeled_identifiers


def touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


def test_cases_are_grouped_by_channel_and_checked(tmp_path):
    touch(tmp_path, "a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "c_0001.nii.gz", "c_0000.nii.gz",
          "c_0002.nii.gz", "d.nii.gz", "e_0000.mha", ".hidden_0000.nii.gz")
    collected = collect_cases(tmp_path, ".nii.gz", num_channels=2, prefix="p__")
    assert [(c.identifier, [f.name for f in c.files]) for c in collected.cases] == [
        ("p__a", ["a_0000.nii.gz", "a_0001.nii.gz"])]
    why = {os.path.basename(k): v for k, v in collected.rejected.items()}
    assert why["b"] == "has channel files _0000; the dataset has 2 channel(s): _0000 to _0001"
    assert why["c"].startswith("has channel files _0000, _0001, _0002")
    assert why["d.nii.gz"].startswith("name is not <case>_<XXXX>.nii.gz")
    assert why["e_0000.mha"].startswith("file ending is not the dataset's '.nii.gz'")
    assert len(why) == 4  # hidden files are ignored


def test_a_missing_folder_says_what_to_give(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder. Give folders of images in nnU-Net's raw naming"):
        collect_cases(tmp_path / "nowhere", ".nii.gz", 1)


def test_only_complete_cases_count(tmp_path):
    folder = unlabeled_folder(tmp_path, "nnUNetPlans_3d_fullres")
    assert folder.name == "nnUNetPlans_3d_fullres_unlabeled" and unlabeled_identifiers(folder) == []
    touch(folder, "x.b2nd", "x_seg.b2nd", "x.pkl", "y.b2nd")  # y: interrupted before its .pkl
    assert unlabeled_identifiers(folder) == ["x"]


def test_case_view_links_each_case_from_its_own_folder(tmp_path):
    labelled, unlabeled = tmp_path / "labelled", tmp_path / "unlabeled"
    touch(labelled, "case_1.b2nd", "case_1_seg.b2nd", "case_1.pkl", "case_10.pkl", "case_10.b2nd")
    touch(unlabeled, "scan.b2nd", "scan_seg.b2nd", "scan.pkl")
    view = case_view(tmp_path / "view", {"case_1": labelled, "scan": unlabeled})
    assert sorted(p.name for p in view.iterdir()) == ["case_1.b2nd", "case_1.pkl", "case_1_seg.b2nd", "scan.b2nd",
                                                      "scan.pkl", "scan_seg.b2nd"]  # case_10 is another case
    assert (view / "scan.pkl").resolve() == (unlabeled / "scan.pkl").resolve()
    view = case_view(tmp_path / "view", {"scan": unlabeled})  # rebuilt: follows the current case list
    assert sorted(p.name for p in view.iterdir()) == ["scan.b2nd", "scan.pkl", "scan_seg.b2nd"]
    with pytest.raises(FileNotFoundError, match="Case gone has no gone.pkl"):
        case_view(tmp_path / "view", {"gone": unlabeled})
