import os

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
