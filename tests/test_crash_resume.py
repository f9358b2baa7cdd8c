"""SIGKILL during training, then `nnUNetv2_train ... --c`: each trainer resumes from its latest checkpoint with
optimiser, learning-rate schedule, epoch and logs intact. A NaN loss stops the run and keeps the last good
checkpoint. nnU-Net's real command line in subprocesses, on the shared synthetic dataset."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from nnunet_mae.training.lr_schedule import warmup_poly_lr
from tests.cli_helpers import load, results_folder, train, train_command
from tests.conftest import DATASET, DATASET_ID

pytestmark = pytest.mark.slow

EPOCHS, KILLED_IN_EPOCH, ITERATIONS = 3, 2, 3


def start_and_kill(root, env, trainer: str, fold) -> None:
    """Start the training, wait until it hangs inside epoch KILLED_IN_EPOCH, SIGKILL it."""
    ready = root / f"{trainer}.ready"
    log = (root / f"{trainer}.killed.log").open("w")
    process = subprocess.Popen(train_command(DATASET_ID, "3d_fullres", fold, trainer),
                               env=dict(env, nnUNet_n_proc_DA="0", E2E_EPOCHS=str(EPOCHS),
                                        E2E_HANG_AT_EPOCH=str(KILLED_IN_EPOCH), E2E_READY_FILE=str(ready)),
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while not ready.exists():
        killed_log = (root / f"{trainer}.killed.log").read_text()
        assert process.poll() is None, f"training ended before the kill:\n{killed_log}"
        assert time.monotonic() < deadline, "training did not reach the kill point in 10 minutes"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    log.close()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("trainer, fold", [("nnUNetTrainerViT_e2e_resume", 0),
                                           ("nnUNetTrainerMAEPretrain_e2e_resume", "all"),
                                           ("nnUNetTrainerGMIMPretrain_e2e_resume", "all"),
                                           ("nnUNetTrainerMAEFinetune_e2e_resume", 0)])
def test_sigkill_then_c_resumes_where_it_stopped(workspace, mae_pretrained, trainer, fold):
    root, env = workspace
    folder = results_folder(root, DATASET, trainer) / f"fold_{fold}"
    start_and_kill(root, env, trainer, fold)
    assert not (folder / "checkpoint_final.pth").exists()
    killed = load(folder / "checkpoint_latest.pth")
    assert killed["current_epoch"] == KILLED_IN_EPOCH

    result = train(dict(env, E2E_EPOCHS=str(EPOCHS)), DATASET_ID, "3d_fullres", fold, trainer, "--c")
    assert re.findall(r"Epoch (\d+)\n", result.stdout) == [str(e) for e in range(KILLED_IN_EPOCH, EPOCHS)]
    assert "Pre-trained encoder loaded" not in result.stdout  # --c restores the fine-tuned weights instead
    final = load(folder / "checkpoint_final.pth")
    assert final["current_epoch"] == EPOCHS
    for key in ("train_losses", "val_losses", "lrs", "epoch_start_timestamps"):  # logs of the killed run kept
        assert final["logging"][key][:KILLED_IN_EPOCH] == killed["logging"][key][:KILLED_IN_EPOCH], key
        assert len(final["logging"][key]) == EPOCHS, key
    if "Pretrain" in trainer:  # the probe: the baseline before the first step, then one per epoch, kept by --c
        epochs = [r["epoch"] for r in final["probe"]["records"]]
        assert epochs == list(range(-1, EPOCHS))
        assert final["probe"]["records"][:KILLED_IN_EPOCH + 1] == killed["probe"]["records"]
        assert final["probe"]["noise"] == killed["probe"]["noise"] is not None
        assert "random-init baseline" not in result.stdout and "Probe Dice (after epoch 2)" in result.stdout
        first_log = min(folder.glob("training_log_*.txt"), key=lambda f: f.stat().st_mtime).read_text()  # killed run
        epoch_0 = re.search(r": Epoch 0\s*$", first_log, re.M)  # nnU-Net's log lines end in a space
        assert epoch_0 and first_log.index("random-init baseline, before the first step") < epoch_0.start()
    # learning rate of the resumed epoch = the schedule at that epoch (highest-rate group is logged)
    expected_lr = warmup_poly_lr(KILLED_IN_EPOCH, initial_lr=3e-4, num_epochs=EPOCHS, warmup_epochs=0.05 * EPOCHS)
    assert final["logging"]["lrs"][KILLED_IN_EPOCH] == pytest.approx(expected_lr)
    # AdamW carried on from the restored state: one step per iteration of every epoch, the killed ones included
    steps = {int(s["step"]) for s in final["optimizer_state"]["state"].values()}
    assert steps == {EPOCHS * ITERATIONS}


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(workspace):
    root, env = workspace
    trainer = "nnUNetTrainerViT_e2e_resume"
    folder = results_folder(root, DATASET, trainer) / "fold_1"
    result = train(dict(env, E2E_EPOCHS="3", E2E_NAN_AT_EPOCH="1"), DATASET_ID, "3d_fullres", 1, trainer,
                   expect_ok=False)
    assert result.returncode != 0
    assert "FloatingPointError: Loss is nan at epoch 1" in result.stderr
    assert re.search(r"the checkpoints in \S+ \([^)]*checkpoint_latest.pth[^)]*\) are untouched", result.stderr)
    assert "contains NaN or inf after preprocessing" in result.stderr  # the input was NaN: the message says so
    last_good = load(folder / "checkpoint_latest.pth")  # written after epoch 0, still readable
    assert last_good["current_epoch"] == 1 and not (folder / "checkpoint_final.pth").exists()
