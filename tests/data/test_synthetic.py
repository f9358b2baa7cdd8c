"""Tests for nnunet_mae.data.synthetic.write_synthetic_dataset (nnU-Net v2 raw layout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_mae.data import write_synthetic_dataset

SMALL = (16, 20, 16)


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _all_arrays(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): _read(p) for p in sorted(folder.rglob("*.nii.gz"))}


def test_layout_and_dataset_json(tmp_path):
    out = write_synthetic_dataset(tmp_path, num_cases=3, shape=SMALL, num_test_cases=2)
    assert out == tmp_path / "Dataset990_Synthetic"
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"case_00{i}_0000.nii.gz" for i in range(3)]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [f"case_00{i}.nii.gz" for i in range(3)]
    # test cases continue the numbering so identifiers never clash with training cases
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == ["case_003_0000.nii.gz", "case_004_0000.nii.gz"]
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["case_003.nii.gz", "case_004.nii.gz"]

    dj = json.loads((out / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "MRI"}
    assert dj["labels"] == {"background": 0, "organ_a": 1, "organ_b": 2}
    assert dj["numTraining"] == 3
    assert dj["file_ending"] == ".nii.gz"

    label = sitk.ReadImage(str(out / "labelsTr" / "case_000.nii.gz"))
    assert label.GetPixelID() == sitk.sitkUInt8
    image = _read(out / "imagesTr" / "case_000_0000.nii.gz")
    assert image.shape == SMALL and image.dtype == np.float32 and np.isfinite(image).all()
    assert sitk.GetArrayFromImage(label).shape == SMALL


def test_custom_id_and_name_and_empty_imagesTs(tmp_path):
    out = write_synthetic_dataset(tmp_path / "raw", dataset_id=7, name="Tiny_Set-1", num_cases=2, shape=(8, 8, 8))
    assert out == tmp_path / "raw" / "Dataset007_Tiny_Set-1"
    assert (out / "imagesTs").is_dir() and not any((out / "imagesTs").iterdir())
    assert not (out / "labelsTs").exists()


def test_deterministic_for_seed(tmp_path):
    kwargs = dict(num_cases=3, shape=SMALL, num_channels=2, num_test_cases=1)
    a = _all_arrays(write_synthetic_dataset(tmp_path / "a", seed=3, **kwargs))
    b = _all_arrays(write_synthetic_dataset(tmp_path / "b", seed=3, **kwargs))
    c = _all_arrays(write_synthetic_dataset(tmp_path / "c", seed=4, **kwargs))
    assert a.keys() == b.keys() == c.keys() and len(a) == 3 * 3 + 1 * 3
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert all(not np.array_equal(a[k], c[k]) for k in a)
    # cases are different from each other, and case i does not depend on num_cases
    assert not np.array_equal(a["labelsTr/case_000.nii.gz"], a["labelsTr/case_001.nii.gz"])
    d = _all_arrays(write_synthetic_dataset(tmp_path / "d", seed=3, **{**kwargs, "num_cases": 2}))
    np.testing.assert_array_equal(d["imagesTr/case_001_0001.nii.gz"], a["imagesTr/case_001_0001.nii.gz"])


@pytest.mark.parametrize("shape", [(32, 40, 32), (8, 8, 8), (40, 48)])
def test_every_case_has_both_foreground_labels(tmp_path, shape):
    out = write_synthetic_dataset(tmp_path, num_cases=12, shape=shape, seed=1)
    for i in range(12):
        label = _read(out / "labelsTr" / f"case_{i:03d}.nii.gz")
        values = set(np.unique(label).tolist())
        assert values == {0, 1, 2}, (i, values)
        # organ_b touches organ_a (they sit next to each other)
        a, b = label == 1, label == 2
        grown = b.copy()
        for ax in range(b.ndim):
            grown |= np.roll(b, 1, ax) | np.roll(b, -1, ax)
        assert np.any(grown & a), i


def test_spacing_round_trips_in_numpy_axis_order(tmp_path):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    spacing = (3.0, 0.8, 0.6)
    out = write_synthetic_dataset(tmp_path, num_cases=2, shape=(10, 24, 20), spacing=spacing)
    for f in ("imagesTr/case_000_0000.nii.gz", "labelsTr/case_000.nii.gz"):
        img = sitk.ReadImage(str(out / f))
        assert np.allclose(img.GetSpacing()[::-1], spacing)
        assert sitk.GetArrayFromImage(img).shape == (10, 24, 20)
    data, props = SimpleITKIO().read_images([str(out / "imagesTr/case_000_0000.nii.gz")])
    assert data.shape == (1, 10, 24, 20)
    assert np.allclose(props["spacing"], spacing)


def test_multichannel(tmp_path):
    out = write_synthetic_dataset(tmp_path, num_cases=2, shape=SMALL, num_channels=3)
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "MRI", "1": "MRI", "2": "MRI"}
    files = sorted(p.name for p in (out / "imagesTr").iterdir())
    assert files == [f"case_00{i}_000{c}.nii.gz" for i in range(2) for c in range(3)]
    chans = [_read(out / "imagesTr" / f"case_000_000{c}.nii.gz") for c in range(3)]
    label = _read(out / "labelsTr" / "case_000.nii.gz")
    # different intensity mappings of the same anatomy: organ contrast differs between channels
    contrasts = [np.mean(ch[label == 1]) / np.mean(ch[label == 2]) for ch in chans]
    assert len({round(c, 2) for c in contrasts}) == 3
    assert all(ch.min() >= 0 for ch in chans)  # MRI magnitude images


def test_ct_intensities_and_normalization(tmp_path):
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import CTNormalization
    from nnunetv2.preprocessing.normalization.map_channel_name_to_normalization import get_normalization_scheme

    out = write_synthetic_dataset(tmp_path, num_cases=2, shape=(24, 32, 32), modality="ct", num_channels=2,
                                  difficulty=0.0)
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "CT", "1": "CT"}
    assert all(get_normalization_scheme(n) is CTNormalization for n in dj["channel_names"].values())
    label = _read(out / "labelsTr" / "case_000.nii.gz")
    for c in range(2):
        img = _read(out / "imagesTr" / f"case_000_000{c}.nii.gz")
        assert img.dtype == np.int16
        assert np.median(img[0]) < -900  # corners of the field of view are air
        for organ in (1, 2):
            assert 40 <= np.median(img[label == organ]) <= 200
        assert img.max() > 300  # bone
        soft = img[(label == 0) & (img > -300) & (img < 250)]
        assert 0 <= np.median(soft) <= 80


def test_2d_written_as_single_slice_volumes(tmp_path):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    out = write_synthetic_dataset(tmp_path, num_cases=2, shape=(48, 56), spacing=(0.5, 0.7))
    img = sitk.ReadImage(str(out / "imagesTr/case_000_0000.nii.gz"))
    assert img.GetDimension() == 3
    assert sitk.GetArrayFromImage(img).shape == (1, 48, 56)
    assert np.allclose(img.GetSpacing(), (0.7, 0.5, 999.0))
    data, props = SimpleITKIO().read_images([str(out / "imagesTr/case_000_0000.nii.gz")])
    seg, seg_props = SimpleITKIO().read_seg(str(out / "labelsTr/case_000.nii.gz"))
    assert data.shape == seg.shape == (1, 1, 48, 56)
    assert np.allclose(props["spacing"], (999.0, 0.5, 0.7)) and np.allclose(seg_props["spacing"], props["spacing"])
    # the 3D default spacing also works for 2D shapes (its first entry is replaced by 999)
    out2 = write_synthetic_dataset(tmp_path / "b", num_cases=2, shape=(48, 56))
    assert np.allclose(sitk.ReadImage(str(out2 / "labelsTr/case_001.nii.gz")).GetSpacing(), (1.0, 1.0, 999.0))


def test_difficulty_scales_noise_and_distractor_similarity(tmp_path):
    easy = write_synthetic_dataset(tmp_path / "e", num_cases=2, shape=(24, 32, 32), difficulty=0.0, modality="CT")
    hard = write_synthetic_dataset(tmp_path / "h", num_cases=2, shape=(24, 32, 32), difficulty=1.0, modality="CT")
    air_std = [np.std(_read(o / "imagesTr/case_000_0000.nii.gz")[0, :3, :3].astype(float)) for o in (easy, hard)]
    assert air_std[1] > 3 * air_std[0]


def _organ_centroids(folder: Path) -> np.ndarray:
    """(case, organ, axis) centroid in voxels of every label map in labelsTr."""
    labels = [_read(p) for p in sorted((folder / "labelsTr").glob("*.nii.gz"))]
    return np.array([[np.argwhere(label == k).mean(0) for k in (1, 2)] for label in labels])


def test_consistent_layout_keeps_the_organs_in_place_and_the_default_does_not(tmp_path):
    shape = (32, 40, 32)
    spread = {}
    for dataset_id, layout in ((1, "random"), (2, "consistent")):
        out = write_synthetic_dataset(tmp_path, dataset_id=dataset_id, name=layout, num_cases=8, shape=shape,
                                      layout=layout)
        centroids = _organ_centroids(out)  # (8, 2, 3)
        spread[layout] = centroids.std(axis=0).max()  # largest spread over cases, any organ and axis [voxels]
        side = centroids[:, 1] - centroids[:, 0]  # where organ_b sits relative to organ_a
        spread[layout + " side"] = (side / np.linalg.norm(side, axis=1, keepdims=True)).std(axis=0).max()
        assert json.loads((out / "dataset.json").read_text())["generator"]["layout"] == layout
    assert spread["consistent"] < 3.0 < spread["random"]  # measured: 1.7 vs 7.2 voxels
    assert spread["consistent side"] < 0.25 < spread["random side"]  # measured: 0.12 vs 0.61


def test_rewrite_removes_stale_cases_and_id_clash_is_rejected(tmp_path):
    write_synthetic_dataset(tmp_path, num_cases=4, shape=(8, 8, 8), num_test_cases=1)
    out = write_synthetic_dataset(tmp_path, num_cases=2, shape=(8, 8, 8))
    assert len(list((out / "imagesTr").iterdir())) == 2 and len(list((out / "labelsTr").iterdir())) == 2
    assert not any((out / "imagesTs").iterdir())
    with pytest.raises(ValueError, match=r"dataset_id=990 is already used"):
        write_synthetic_dataset(tmp_path, name="Other", num_cases=2, shape=(8, 8, 8))


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(num_cases=1), r"num_cases=1 .*>= 2.*pass num_cases"),
    (dict(shape=(32, 4, 32)), r"shape=\(32, 4, 32\).*at least 8 voxels.*axis 1 has 4.*enlarge"),
    (dict(shape=(32,)), r"shape=\(32,\).*2 \(2D\) or 3 \(3D\)"),
    (dict(num_channels=0), r"num_channels=0 .*>= 1.*pass 1"),
    (dict(modality="PET"), r"modality='PET' is unknown.*one of \('MRI', 'CT'\).*use 'CT'"),
    (dict(spacing=(1.0, 1.0)), r"spacing=\(1.0, 1.0\) .*one entry per axis"),
    (dict(spacing=(1.0, -1.0, 1.0)), r"spacing=.*> 0"),
    (dict(difficulty=1.5), r"difficulty=1.5 .*\[0, 1\]"),
    (dict(dataset_id=1000), r"dataset_id=1000 .*\[1, 999\]"),
    (dict(name="bad name"), r"name='bad name'"),
    (dict(num_test_cases=-1), r"num_test_cases=-1"),
    (dict(layout="atlas"), r"layout='atlas' is unknown.*'random'.*'consistent'"),
])
def test_bad_arguments_raise_value_error(tmp_path, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        write_synthetic_dataset(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())  # nothing written


def test_nnunet_verify_dataset_integrity_accepts_dataset(tmp_path, capsys, monkeypatch):
    import multiprocessing

    from nnunetv2.experiment_planning import verify_dataset_integrity as vdi
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    if "fork" in multiprocessing.get_all_start_methods():
        # nnU-Net hard-codes a "spawn" pool; each spawned worker re-imports torch + nnU-Net (~10 s on small CI
        # machines). The check itself is unchanged with forked workers.
        get_context = multiprocessing.get_context
        monkeypatch.setattr(vdi.multiprocessing, "get_context", lambda method=None: get_context("fork"))
    out = write_synthetic_dataset(tmp_path, num_cases=3, shape=SMALL, num_channels=2, num_test_cases=1)
    verify_dataset_integrity(str(out), num_processes=1)  # raises on any problem
    # the per-case checks ran in worker processes whose output is not captured: repeat them here for the warnings
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    for i in range(3):
        images = [str(out / "imagesTr" / f"case_{i:03d}_{c:04d}.nii.gz") for c in range(2)]
        label = str(out / "labelsTr" / f"case_{i:03d}.nii.gz")
        assert vdi.check_cases(images, label, 2, SimpleITKIO)
        assert vdi.verify_labels(label, SimpleITKIO, [0, 1, 2])
    printed = capsys.readouterr().out
    assert "verify_dataset_integrity Done" in printed
    assert "Warning" not in printed and "Error" not in printed


def _slow_tests_selected(config) -> bool:
    markexpr = (config.option.markexpr or "").replace(" ", "")
    return os.environ.get("NNUNET_MAE_RUN_SLOW") == "1" or ("slow" in markexpr and "notslow" not in markexpr)


@pytest.mark.slow
def test_nnunet_plan_and_preprocess_2d(tmp_path, request):
    """nnUNetv2_plan_and_preprocess plans only `2d` for a 2D dataset and preprocesses it (~45 s on 2 CPUs).

    Skipped unless selected: `pytest -m slow tests/data` or NNUNET_MAE_RUN_SLOW=1."""
    if not _slow_tests_selected(request.config):
        pytest.skip("slow: run with `-m slow` or NNUNET_MAE_RUN_SLOW=1")
    raw, pre, res = tmp_path / "raw", tmp_path / "pre", tmp_path / "res"
    write_synthetic_dataset(raw, dataset_id=991, num_cases=6, shape=(48, 48), spacing=(0.8, 0.7))
    env = {**os.environ, "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(pre), "nnUNet_results": str(res)}
    code = ("import sys; from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import "
            "plan_and_preprocess_entry as main; sys.argv[0] = 'nnUNetv2_plan_and_preprocess'; sys.exit(main())")
    proc = subprocess.run([sys.executable, "-c", code, "-d", "991", "-c", "2d", "-np", "2", "-npfp", "2",
                           "--verify_dataset_integrity", "--no_pbar"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plans = json.loads((pre / "Dataset991_Synthetic" / "nnUNetPlans.json").read_text())
    assert list(plans["configurations"]) == ["2d"]
    assert np.allclose(plans["original_median_spacing_after_transp"], (999.0, 0.8, 0.7))
    assert plans["configurations"]["2d"]["patch_size"] == [48, 48]
    assert len(list((pre / "Dataset991_Synthetic" / "nnUNetPlans_2d").glob("case_*.pkl"))) == 6
