"""Determinism and per-rank / per-epoch mask streams of the pre-training trainers."""

import pytest
import torch

from nnunet_mae.training.gmim_trainer import nnUNetTrainerGMIMPretrain
from nnunet_mae.training.mae_trainer import nnUNetTrainerMAEPretrain
from nnunet_mae.training.seeding import epoch_generator, stream_seed
from tests.training.tiny_trainer import tiny_images, tiny_trainer

PRETRAINERS = [nnUNetTrainerMAEPretrain, nnUNetTrainerGMIMPretrain]


def started(trainer_class, tmp_path, monkeypatch, seed, rank=0, epoch=0):
    trainer = tiny_trainer(trainer_class, tmp_path, monkeypatch)
    trainer.seed = seed
    trainer.initialize()
    trainer.local_rank, trainer.current_epoch = rank, epoch
    trainer.on_train_epoch_start()
    return trainer


def first_mask(trainer, data):
    with torch.no_grad():
        return trainer.mask_and_reconstruct(data)[2]


@pytest.mark.parametrize("trainer_class", PRETRAINERS)
def test_same_seed_same_weights_masks_and_first_step_loss(trainer_class, tmp_path, monkeypatch):
    data = tiny_images()
    batch = {"data": data, "target": None}
    a = started(trainer_class, tmp_path / "a", monkeypatch, seed=7)
    b = started(trainer_class, tmp_path / "b", monkeypatch, seed=7)
    for (name, pa), pb in zip(a.network.state_dict().items(), b.network.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert a.train_step(batch)["loss"] == b.train_step(batch)["loss"]
    assert torch.equal(first_mask(a, data), first_mask(b, data))  # the streams stay in step

    c = started(trainer_class, tmp_path / "c", monkeypatch, seed=8)
    assert not torch.equal(a.network.encoder.pos_embed, c.network.encoder.pos_embed)


@pytest.mark.parametrize("trainer_class", PRETRAINERS)
def test_masks_differ_between_ranks_and_epochs(trainer_class, tmp_path, monkeypatch):
    data = tiny_images(batch=8)
    rank0 = first_mask(started(trainer_class, tmp_path / "0", monkeypatch, seed=7), data)
    rank1 = first_mask(started(trainer_class, tmp_path / "1", monkeypatch, seed=7, rank=1), data)
    epoch1 = first_mask(started(trainer_class, tmp_path / "e", monkeypatch, seed=7, epoch=1), data)
    assert not torch.equal(rank0, rank1) and not torch.equal(rank0, epoch1)
    # a resumed run (--c restores current_epoch) draws what the uninterrupted run drew in that epoch
    again = first_mask(started(trainer_class, tmp_path / "r", monkeypatch, seed=7, epoch=1), data)
    assert torch.equal(epoch1, again)


def test_without_a_seed_every_process_draws_its_own_stream(tmp_path, monkeypatch):
    data = tiny_images(batch=8)
    a = first_mask(started(nnUNetTrainerMAEPretrain, tmp_path / "a", monkeypatch, seed=None), data)
    b = first_mask(started(nnUNetTrainerMAEPretrain, tmp_path / "b", monkeypatch, seed=None), data)
    assert not torch.equal(a, b)


def test_stream_seeds_are_distinct_and_reproducible():
    seeds = {stream_seed(0, rank, epoch) for rank in range(4) for epoch in range(100)}
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)
    g1, g2 = epoch_generator(torch.device("cpu"), 5, 1, 2), epoch_generator(torch.device("cpu"), 5, 1, 2)
    assert torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=g2))
