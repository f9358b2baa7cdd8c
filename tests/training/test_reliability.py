"""The reliability room (training/reliability.py) in front of nnU-Net's own `nnUNetTrainer`, through nnU-Net's
command line: a run locks its folder, writes its checkpoints atomically with the best value after the epoch, and
reads them back once, weights-only, for `--c` and `--val`."""

from __future__ import annotations

import re

import pytest

from nnunet_mae.training.run_lock import LOCK_NAME
from nnunet_mae.transfer.checkpoint_io import safe_torch_load
from tests.cli_helpers import results_folder, train
from tests.conftest import DATASET, DATASET_ID

pytestmark = pytest.mark.slow

TRAINER = "nnUNetTrainerReliable_e2e"


def test_nnunets_trainer_with_reliability_trains_resumes_and_validates(workspace):
    root, env = workspace
    folder = results_folder(root, DATASET, TRAINER) / "fold_3"
    first = train(env, DATASET_ID, "3d_fullres", 3, TRAINER)
    assert "Epoch 1" in first.stdout
    final = safe_torch_load(folder / "checkpoint_final.pth")  # raises if it needed unpickling
    assert final["trainer_name"] == TRAINER and final["current_epoch"] == 2
    assert "_best_ema" in final and final["_best_ema"] == max(final["logging"]["ema_fg_dice"])
    assert not (folder / LOCK_NAME).exists()  # released at the end
    assert not [p.name for p in folder.iterdir() if ".tmp" in p.name]  # no temporaries of atomic writes

    # --c on a finished run: nnU-Net loads checkpoint_final (through the room: read once, weights-only) and stops
    resumed = train(env, DATASET_ID, "3d_fullres", 3, TRAINER, "--c")
    assert not re.findall(r"Epoch \d+\s*\n", resumed.stdout)  # nothing trained again
    (folder / "validation" / "summary.json").unlink()
    train(env, DATASET_ID, "3d_fullres", 3, TRAINER, "--val")
    assert (folder / "validation" / "summary.json").is_file()
