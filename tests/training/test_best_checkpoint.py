"""checkpoint_latest holds the best-so-far value that checkpoint_best holds, so --c compares with the true best;
pre-training's epoch end takes nnU-Net's decisions for a loss."""

import os
import time

import pytest

from nnunet_mae.training.trainers import nnUNetTrainerMAEPretrain, nnUNetTrainerViT
from nnunet_mae.transfer.checkpoint_io import safe_torch_load
from tests.training.tiny_trainer import tiny_trainer


def _log_epoch(trainer, epoch, dice=None, val_loss=1.0):
    log = trainer.logger.log
    log("epoch_start_timestamps", time.time(), epoch)
    log("lrs", 1e-4, epoch)
    log("train_losses", 1.0, epoch)
    log("val_losses", val_loss, epoch)
    if dice is not None:  # segmentation trainers; logging mean_fg_dice also logs its EMA (ema_fg_dice)
        log("dice_per_class_or_region", [dice, dice], epoch)
        log("mean_fg_dice", dice, epoch)


@pytest.mark.parametrize("trainer_class, values, key", [(nnUNetTrainerViT, {"dice": 0.7}, "_best_ema"),
                                                        (nnUNetTrainerMAEPretrain, {"val_loss": 0.4},
                                                         "best_reconstruction_loss")])
def test_latest_and_best_agree_on_the_best_value_in_a_new_best_epoch(trainer_class, values, key, tmp_path,
                                                                     monkeypatch):
    trainer = tiny_trainer(trainer_class, tmp_path, monkeypatch, fold=0)
    trainer.initialize()
    trainer.save_every, trainer.num_epochs = 1, 10
    _log_epoch(trainer, 0, **values)
    trainer.on_epoch_end()  # epoch 0: always a new best; nnU-Net writes latest first, then best
    latest = safe_torch_load(f"{trainer.output_folder}/checkpoint_latest.pth")
    best = safe_torch_load(f"{trainer.output_folder}/checkpoint_best.pth")
    assert best[key] is not None
    assert latest[key] == best[key] == getattr(trainer, key)
    assert latest["current_epoch"] == best["current_epoch"] == 1


def test_latest_keeps_the_earlier_best_when_the_epoch_is_worse(tmp_path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerViT, tmp_path, monkeypatch, fold=0)
    trainer.initialize()
    trainer.save_every, trainer.num_epochs = 1, 10
    _log_epoch(trainer, 0, dice=0.8)
    trainer.on_epoch_end()
    _log_epoch(trainer, 1, dice=0.0)  # the EMA drops: no new best
    trainer.on_epoch_end()
    latest = safe_torch_load(f"{trainer.output_folder}/checkpoint_latest.pth")
    best = safe_torch_load(f"{trainer.output_folder}/checkpoint_best.pth")
    assert latest["current_epoch"] == 2 and best["current_epoch"] == 1
    assert latest["_best_ema"] == best["_best_ema"] == pytest.approx(0.8)


def test_resuming_from_checkpoint_best_says_so(tmp_path, monkeypatch):
    """nnU-Net's --c falls back to checkpoint_best.pth when neither latest nor final exists: the log says so."""
    trainer = tiny_trainer(nnUNetTrainerViT, tmp_path / "a", monkeypatch, fold=0)
    trainer.initialize()
    trainer.current_epoch = 4
    best = tmp_path / "checkpoint_best.pth"
    trainer.save_checkpoint(str(best))
    resumed = tiny_trainer(nnUNetTrainerViT, tmp_path / "b", monkeypatch, fold=0)
    resumed.load_checkpoint(str(best))
    log = open(resumed.log_file).read()
    assert "Loaded checkpoint_best.pth (end of epoch 4). With --c this means that neither" in log
    latest = tmp_path / "checkpoint_latest.pth"
    trainer.save_checkpoint(str(latest))
    other = tiny_trainer(nnUNetTrainerViT, tmp_path / "c", monkeypatch, fold=0)
    other.load_checkpoint(str(latest))
    assert "With --c this means" not in open(other.log_file).read()


def _checkpoints_written(trainer, log_values: list[dict]) -> list[tuple[int, str]]:
    """(epoch, file) of every checkpoint `on_epoch_end` writes over the epochs; the files themselves are not needed."""
    written = []
    trainer.save_checkpoint = lambda filename: written.append((trainer.current_epoch, filename.rsplit("/", 1)[-1]))
    for epoch, values in enumerate(log_values):
        _log_epoch(trainer, epoch, **values)
        trainer.on_epoch_end()
    return written


def test_pretraining_epoch_end_takes_nnunets_steps_for_a_loss(tmp_path, monkeypatch):
    """PretrainingTrainer.on_epoch_end is its own method (nnU-Net's prints and plots a pseudo Dice); it must take the
    decisions nnU-Net's own on_epoch_end takes: the same latest/best checkpoints at the same epochs for a loss that
    falls when nnU-Net's Dice rises (loss = 1 - Dice, so the moving averages mirror each other), the epoch counter,
    the progress plot. Run against the installed nnU-Net, so a change there shows up here."""
    dice = [0.2, 0.5, 0.4, 0.6, 0.1, 0.7, 0.65, 0.9]
    runs = {}
    for trainer_class, values in ((nnUNetTrainerViT, [{"dice": d} for d in dice]),
                                  (nnUNetTrainerMAEPretrain, [{"val_loss": 1.0 - d} for d in dice])):
        trainer = tiny_trainer(trainer_class, tmp_path / trainer_class.__name__, monkeypatch, fold=0)
        trainer.initialize()
        trainer.save_every, trainer.num_epochs = 3, len(dice)
        trainer.probe_every = 0  # no labelled data here; the probe's own tests are in test_probe_trainer.py
        runs[trainer_class] = (_checkpoints_written(trainer, values), trainer.current_epoch, trainer.output_folder)
    (nnunet_written, nnunet_epoch, nnunet_folder), (ours_written, ours_epoch, ours_folder) = runs.values()
    # within an epoch the order may differ: pre-training writes best before latest, so that latest carries the new
    # best value (nnU-Net's order, and ViT's save_checkpoint fix for it: the first test above)
    assert sorted(ours_written) == sorted(nnunet_written) and ours_epoch == nnunet_epoch == len(dice)
    assert {name for _, name in nnunet_written} == {"checkpoint_latest.pth", "checkpoint_best.pth"}
    assert os.path.isfile(f"{ours_folder}/progress.png") and os.path.isfile(f"{nnunet_folder}/progress.png")
