"""Shared CLI workspace: the synthetic dataset 990, planned and preprocessed once per test session."""

import pytest

from nnunet_mae.data import write_synthetic_dataset
from tests.cli_helpers import make_workspace, results_folder, run, train

DATASET_ID, DATASET = 990, "Dataset990_Synthetic"


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet")
    env = make_workspace(root)
    write_synthetic_dataset(root / "raw", dataset_id=DATASET_ID, num_cases=10, shape=(24, 32, 24), num_test_cases=2,
                            seed=3)
    run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres", "-np", "1",
         "--verify_dataset_integrity"], env)
    return root, env


@pytest.fixture(scope="session")
def mae_pretrained(workspace):
    """fold_all of nnUNetTrainerMAEPretrain_e2e on dataset 990 (the tiny MAE pre-training)."""
    root, env = workspace
    train(env, DATASET_ID, "3d_fullres", "all", "nnUNetTrainerMAEPretrain_e2e")
    return results_folder(root, DATASET, "nnUNetTrainerMAEPretrain_e2e") / "fold_all"
