"""One run per output folder: a second run stops at once and names the first; stale locks are replaced."""

import json
import subprocess
import sys
import time

import pytest

from nnunet_mae.training.run_lock import LOCK_NAME, RunLockedError, acquire_run_lock, release_run_lock
from nnunet_mae.training.trainers import nnUNetTrainerViT
from tests.training.tiny_trainer import tiny_trainer

HOLD = ("import sys, time; from nnunet_mae.training.run_lock import acquire_run_lock; "
        "acquire_run_lock(sys.argv[1]); print('locked', flush=True); time.sleep(120)")


@pytest.fixture
def holder(tmp_path):
    """Another process that holds the lock of tmp_path/'fold_0'."""
    folder = tmp_path / "fold_0"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    yield folder, process
    process.kill()
    process.wait()


def test_second_run_stops_naming_the_first(holder):
    folder, process = holder
    with pytest.raises(RunLockedError, match=rf"Another run is already training in {folder} \(pid {process.pid} on "
                                             rf"host .*started .*Wait for it to finish"):
        acquire_run_lock(folder)


def test_trainer_refuses_a_folder_another_live_run_holds(tmp_path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerViT, tmp_path, monkeypatch, fold=0)
    process = subprocess.Popen([sys.executable, "-c", HOLD, trainer.output_folder], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {process.pid}"):
            trainer.initialize()
        assert not trainer.was_initialized
    finally:
        process.kill()
        process.wait()


def test_lock_of_a_killed_run_is_stale_and_replaced(holder):
    folder, process = holder
    process.kill()
    process.wait()
    path, note = acquire_run_lock(folder)
    assert f"pid {process.pid}" in note and "no longer running" in note
    assert json.loads(path.read_text())["pid"] != process.pid
    release_run_lock(path)
    assert not path.exists()


def test_reentrant_in_the_same_process_and_released_at_exit(tmp_path):
    path, _ = acquire_run_lock(tmp_path)
    assert acquire_run_lock(tmp_path) == (path, None)
    release_run_lock(path)
    # a process that exits normally leaves no lock behind
    subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", "pass"), str(tmp_path / "b")], check=True,
                   capture_output=True)
    assert not (tmp_path / "b" / LOCK_NAME).exists()


def test_lock_from_another_host_is_never_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": time.ctime(),
                                                  "command": "nnUNetv2_train 4 3d_fullres 0"}))
    with pytest.raises(RunLockedError, match="on host elsewhere.*cannot tell.*delete"):
        acquire_run_lock(tmp_path)
