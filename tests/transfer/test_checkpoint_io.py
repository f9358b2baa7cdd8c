import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from nnunet_mae.transfer.checkpoint_io import atomic_target, load_checkpoint_file


def test_crash_while_writing_keeps_the_previous_file(tmp_path):
    path = tmp_path / "checkpoint_latest.pth"
    torch.save({"network_weights": {"w": torch.ones(3)}}, path)
    with pytest.raises(KeyboardInterrupt):
        with atomic_target(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half a checkpoint")
            raise KeyboardInterrupt  # killed mid-write
    assert torch.equal(load_checkpoint_file(path)["network_weights"]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["checkpoint_latest.pth"]


def test_successful_write_replaces_the_file(tmp_path):
    path = tmp_path / "c.pth"
    with atomic_target(path) as tmp:
        torch.save({"network_weights": {"w": torch.zeros(2)}}, tmp)
    assert torch.equal(load_checkpoint_file(path)["network_weights"]["w"], torch.zeros(2))


def test_corrupt_and_foreign_files_get_clear_errors(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(RuntimeError, match="corrupt or not a PyTorch checkpoint"):
        load_checkpoint_file(corrupt)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(RuntimeError, match="not an nnU-Net checkpoint"):
        load_checkpoint_file(foreign)
    with pytest.raises(FileNotFoundError):
        load_checkpoint_file(tmp_path / "missing.pth")


WRITER = """
import sys, torch
from nnunet_mae.transfer.checkpoint_io import atomic_target
path = sys.argv[1]
i = 0
while True:
    i += 1
    with atomic_target(path) as tmp:
        torch.save({"network_weights": {"w": torch.full((4_000_000,), float(i))}, "i": i}, tmp)
"""


def test_sigkill_while_writing_never_leaves_an_unreadable_checkpoint(tmp_path):
    """A process rewriting a 16 MB checkpoint in a loop is killed at random moments: the file always loads."""
    path = tmp_path / "checkpoint_latest.pth"
    torch.save({"network_weights": {"w": torch.zeros(4_000_000)}, "i": 0}, path)
    rng = random.Random(0)
    killed_mid_write = 0
    for _ in range(8):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("*.tmp-*")) and time.monotonic() < deadline:  # wait until a write is under way
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.1))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        killed_mid_write += bool(list(tmp_path.glob("*.tmp-*")))  # the kill hit a write in progress
        checkpoint = load_checkpoint_file(path)
        w = checkpoint["network_weights"]["w"]
        assert torch.equal(w, torch.full_like(w, float(checkpoint["i"])))  # complete, not a mix of two writes
        for stray in tmp_path.glob("*.tmp-*"):
            stray.unlink()
    assert killed_mid_write > 0  # otherwise the test proved nothing
