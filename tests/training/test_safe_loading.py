"""No checkpoint runs code on load, whichever route it takes; an explicit -pretrained_weights file wins."""

import os

import nnunetv2.run.run_training as run_training
import pytest
import torch

from nnunet_mae.training.trainers import (nnUNetTrainerGMIMFinetune_smoke, nnUNetTrainerMAEFinetune,
                                          nnUNetTrainerMAEPretrain, nnUNetTrainerViT)
from nnunet_mae.transfer.checkpoint_io import UnsafeCheckpointError, load_checkpoint_file, safe_torch_load
from tests.training.tiny_trainer import tiny_trainer


class _WritesMarker:
    """Unpickling this calls os.system: the attack a shared checkpoint can carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def malicious(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "shared_checkpoint.pth"
    torch.save({"network_weights": {}, "nnunet_mae": {}, "payload": _WritesMarker(marker)}, path)
    return path, marker


def test_the_package_own_checkpoints_load_weights_only(tmp_path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerMAEPretrain, tmp_path, monkeypatch)
    trainer.initialize()
    trainer.save_checkpoint(str(tmp_path / "own.pth"))
    checkpoint = safe_torch_load(tmp_path / "own.pth")
    assert {"network_weights", "optimizer_state", "logging", "nnunet_mae"} <= set(checkpoint)


def test_refused_through_nnUNet_MAE_pretrained(tmp_path, monkeypatch, malicious):
    path, marker = malicious
    monkeypatch.setenv("nnUNet_MAE_pretrained", str(path))
    trainer = tiny_trainer(nnUNetTrainerMAEFinetune, tmp_path, monkeypatch, fold=0)
    trainer.initialize()
    with pytest.raises(UnsafeCheckpointError, match=r"holds the object posix.system.*convert it once"):
        trainer.load_pretrained_encoder()
    assert not marker.exists()


def test_refused_as_the_automatically_found_pretraining(tmp_path, monkeypatch, malicious):
    path, marker = malicious
    monkeypatch.delenv("nnUNet_MAE_pretrained", raising=False)
    trainer = tiny_trainer(nnUNetTrainerMAEFinetune, tmp_path, monkeypatch, fold=0)
    trainer.initialize()
    folder = trainer.pretraining_folder()
    folder.mkdir(parents=True)
    os.replace(path, folder / "checkpoint_final.pth")
    with pytest.raises(UnsafeCheckpointError):
        trainer.load_pretrained_encoder()
    assert not marker.exists()


@pytest.mark.parametrize("trainer_class", [nnUNetTrainerViT, nnUNetTrainerMAEFinetune])
def test_refused_through_nnunet_pretrained_weights(trainer_class, tmp_path, monkeypatch, malicious):
    """nnUNetv2_train's own function, as it runs: initialize(), then run_training.load_pretrained_weights."""
    path, marker = malicious
    trainer = tiny_trainer(trainer_class, tmp_path, monkeypatch, fold=0)
    with pytest.raises(UnsafeCheckpointError):
        run_training.maybe_load_checkpoint(trainer, False, False, str(path))
    assert not marker.exists()


def test_refused_when_resuming_from_a_planted_checkpoint(tmp_path, monkeypatch, malicious):
    path, marker = malicious
    trainer = tiny_trainer(nnUNetTrainerViT, tmp_path, monkeypatch, fold=0)
    with pytest.raises(UnsafeCheckpointError):
        trainer.load_checkpoint(str(path))
    assert not marker.exists()


def test_corrupt_file_still_reads_as_corrupt_not_unsafe(tmp_path):
    path = tmp_path / "truncated.pth"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RuntimeError, match="could not be read .*corrupt") as error:
        load_checkpoint_file(path)
    assert not isinstance(error.value, UnsafeCheckpointError)


def _finetuning_checkpoint_filled_with(value, tmp_path, monkeypatch):
    source = tiny_trainer(nnUNetTrainerMAEFinetune, tmp_path / "source", monkeypatch, fold=0)
    source.initialize()
    with torch.no_grad():
        for p in source.network.parameters():
            p.fill_(value)
    path = tmp_path / "explicit.pth"
    source.save_checkpoint(str(path))
    return path


def _all_but_seg_layers_equal(network, value) -> bool:
    """nnU-Net's loader transfers everything but the segmentation head (`.seg_layers.`)."""
    return all(torch.all(p == value) for name, p in network.named_parameters() if ".seg_layers." not in name)


def test_explicit_pretrained_weights_win_over_the_automatic_search(tmp_path, monkeypatch):
    explicit = _finetuning_checkpoint_filled_with(0.123, tmp_path, monkeypatch)
    pretrainer = tiny_trainer(nnUNetTrainerMAEPretrain, tmp_path / "pre", monkeypatch)
    pretrainer.initialize()
    pretrainer.save_checkpoint(str(tmp_path / "automatic.pth"))
    monkeypatch.setenv("nnUNet_MAE_pretrained", str(tmp_path / "automatic.pth"))

    trainer = tiny_trainer(nnUNetTrainerMAEFinetune, tmp_path / "ft", monkeypatch, fold=0)
    run_training.maybe_load_checkpoint(trainer, False, False, str(explicit))
    trainer.start_from_pretrained_encoder()
    assert _all_but_seg_layers_equal(trainer.network, 0.123)
    log = open(trainer.log_file).read()
    assert f"Weights loaded from -pretrained_weights {explicit}" in log
    assert ("given explicitly): the automatic search for a pre-trained encoder is skipped and nnUNet_MAE_pretrained"
            in log)


def test_explicit_pretrained_weights_need_no_automatic_pretraining(tmp_path, monkeypatch):
    explicit = _finetuning_checkpoint_filled_with(0.5, tmp_path, monkeypatch)
    monkeypatch.delenv("nnUNet_MAE_pretrained", raising=False)
    trainer = tiny_trainer(nnUNetTrainerGMIMFinetune_smoke, tmp_path / "ft", monkeypatch, fold=0)
    with pytest.raises(FileNotFoundError, match="No pre-trained encoder"):
        trainer.locate_pretrained()  # there is no automatic pre-training
    run_training.maybe_load_checkpoint(trainer, False, False, str(explicit))
    trainer.start_from_pretrained_encoder()  # no error: the explicit file is the start
    assert _all_but_seg_layers_equal(trainer.network, 0.5)
