"""A run with data-augmentation workers, as users train: a second run on the same fold stops at once; SIGTERM
stops the workers too and releases the lock; `--c` removes the temporary file of an interrupted write."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nnunet_mae.training.run_lock import LOCK_NAME
from tests.cli_helpers import load, results_folder, run, train_command
from tests.conftest import DATASET, DATASET_ID

pytestmark = pytest.mark.slow

TRAINER, FOLD = "nnUNetTrainerViT_e2e_resume", 2


def descendants(pid: int) -> set[int]:
    """All processes below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_second_run_refused_sigterm_leaves_nothing_and_c_cleans_up(workspace, tmp_path):
    root, env = workspace
    folder = results_folder(root, DATASET, TRAINER) / f"fold_{FOLD}"
    ready = tmp_path / "ready"
    env_a = dict(env, nnUNet_n_proc_DA="2", E2E_EPOCHS="3", E2E_HANG_AT_EPOCH="1", E2E_READY_FILE=str(ready))
    with open(tmp_path / "a.log", "w") as log:
        a = subprocess.Popen(train_command(DATASET_ID, "3d_fullres", FOLD, TRAINER), env=env_a, stdout=log,
                             stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while not ready.exists():
        assert a.poll() is None, (tmp_path / "a.log").read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    workers = descendants(a.pid)
    assert len(workers) >= 2, "nnUNet_n_proc_DA=2 should run augmentation workers"

    logs_before = sorted(p.name for p in folder.glob("training_log_*.txt"))
    started = time.monotonic()
    b = run(train_command(DATASET_ID, "3d_fullres", FOLD, TRAINER), dict(env, nnUNet_n_proc_DA="0"),
            expect_ok=False)
    assert b.returncode != 0 and time.monotonic() - started < 120
    assert re.search(rf"Another run is already training in .*fold_{FOLD} \(pid {a.pid} on host", b.stderr)
    assert "Traceback" not in b.stderr  # the refusal is one message, not a crash
    assert sorted(p.name for p in folder.glob("training_log_*.txt")) == logs_before  # b left no log in a's folder

    a.send_signal(signal.SIGTERM)
    a.wait(timeout=120)
    assert a.returncode != 0
    deadline = time.monotonic() + 30
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [p for p in workers if alive(p)], "augmentation workers outlived the SIGTERMed run"
    assert not (folder / LOCK_NAME).exists()

    stray = folder / "checkpoint_latest.pth.tmp-999999"
    stray.write_bytes(b"half a checkpoint")
    result = run(train_command(DATASET_ID, "3d_fullres", FOLD, TRAINER, "--c"), dict(env, nnUNet_n_proc_DA="0",
                                                                                     E2E_EPOCHS="3"))
    assert "Removed checkpoint_latest.pth.tmp-999999, left by a write that was interrupted." in result.stdout
    assert not stray.exists() and load(folder / "checkpoint_final.pth")["current_epoch"] == 3
    assert not list(folder.glob("*.tmp-*")) and not (folder / LOCK_NAME).exists()
