"""A real trainer instance on hand-written tiny plans (patch 16x24x16), no preprocessed data needed."""

from __future__ import annotations

import copy

import torch

TINY_PLANS = {
    "dataset_name": "Dataset999_Tiny", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
    "original_median_spacing_after_transp": [1.0, 1.0, 1.0], "original_median_shape_after_transp": [16, 24, 16],
    "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "experiment_planner_used": "ExperimentPlanner",
    "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {},
    "configurations": {"3d_fullres": {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [16, 24, 16], "median_image_size_in_voxels": [16, 24, 16], "spacing": [1.0, 1.0, 1.0],
        "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape", "resampling_fn_probabilities_kwargs": {},
        "architecture": {"network_class_name": "unused", "arch_kwargs": {}, "_kw_requires_import": []},
        "batch_dice": False},
        "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}},
}
TINY_DATASET = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 2,
                "file_ending": ".nii.gz"}


def tiny_trainer(trainer_class, tmp_path, monkeypatch, fold="all", configuration="3d_fullres", patch_size=None):
    """An instance of `trainer_class` on the tiny plans, logging into tmp_path; call `initialize()` yourself."""
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "preprocessed"))
    # initialize() asks the preprocessed folder which file format it holds; there is none here
    monkeypatch.setattr("nnunetv2.training.nnUNetTrainer.nnUNetTrainer.infer_dataset_class", lambda folder: None)
    plans = copy.deepcopy(TINY_PLANS)  # trainers may write the rounded patch into their plans
    if patch_size is not None:
        plans["configurations"]["3d_fullres"]["patch_size"] = list(patch_size)
    return trainer_class({**plans, "continue_training": False}, configuration, fold, TINY_DATASET,
                         torch.device("cpu"))


def tiny_images(batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, 16, 24, 16, generator=g)
    x[:, :, :8] *= 3.0  # entropy differs between regions
    return x
