"""The trainers' steps under DistributedDataParallel: 2 processes, gloo backend, CPU.

nnU-Net's `-num_gpus N` path needs CUDA devices; here the same trainer code runs with the network wrapped in DDP
as nnU-Net wraps it (no find_unused_parameters), `is_ddp` and `local_rank` set as nnU-Net sets them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from nnunet_mae.training.distributed import mean_over_ranks
from nnunet_mae.training.trainers import nnUNetTrainerGMIMPretrain, nnUNetTrainerMAEFinetune, nnUNetTrainerMAEPretrain
from tests.training.tiny_trainer import tiny_images, tiny_trainer

WORLD_SIZE = 2
TRAINERS = {"mae": nnUNetTrainerMAEPretrain, "gmim": nnUNetTrainerGMIMPretrain, "finetune": nnUNetTrainerMAEFinetune}


def gathered(tensor: torch.Tensor) -> list[torch.Tensor]:
    out = [torch.empty_like(tensor) for _ in range(WORLD_SIZE)]
    dist.all_gather(out, tensor.contiguous())
    return out


def ddp_trainer(name: str, rank: int, tmp_path):
    """Built under an initialised process group, as `nnUNetv2_train -num_gpus 2` builds it: nnU-Net's __init__ sets
    is_ddp / local_rank and splits the batch, its initialize() wraps the network in DDP. Only the CUDA device is
    replaced by the CPU (and DDP's device_ids dropped, which CPU modules refuse)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr("nnunetv2.training.nnUNetTrainer.nnUNetTrainer.DDP",
                            lambda module, device_ids=None, **kwargs: DDP(module, **kwargs))
        # SyncBatchNorm (GMIM's projector heads on GPUs) runs on CUDA only; per-rank BatchNorm here
        monkeypatch.setattr(torch.nn.SyncBatchNorm, "convert_sync_batchnorm",
                            staticmethod(lambda module, process_group=None: module))
        trainer = tiny_trainer(TRAINERS[name], tmp_path / f"rank{rank}", monkeypatch)
        assert trainer.is_ddp and trainer.local_rank == rank
        trainer.device = torch.device("cpu")
        torch.manual_seed(100 + rank)  # different initial weights per rank: DDP must broadcast rank 0's
        trainer.initialize()
    assert isinstance(trainer.network, DDP)
    trainer.on_train_epoch_start()
    return trainer


def batch_for(name: str, rank: int) -> dict:
    data = tiny_images(batch=2, seed=rank)  # every rank its own data
    target = torch.randint(0, 3, (2, 1, 16, 24, 16), generator=torch.Generator().manual_seed(rank))
    return {"data": data, "target": target if name == "finetune" else None}


def local_and_averaged_gradients(trainer, batch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gradients of one loss computed without DDP's all-reduce (no_sync) and with it, same masks both times."""
    network, grads = trainer.network, []
    for sync in (False, True):
        network.zero_grad(set_to_none=True)
        generator = torch.Generator().manual_seed(5 + trainer.local_rank)
        context = network.no_sync() if not sync else torch.enable_grad()
        with context:
            if batch["target"] is None:
                loss = trainer.compute_loss(batch["data"], generator=generator)
            else:
                loss = trainer.compute_loss(batch["data"], batch["target"])
            loss.backward()
        grads.append([p.grad.clone() for p in network.parameters() if p.requires_grad])
    return grads[0], grads[1]


def worker(rank: int, init_file: str, tmp_path, name: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        trainer = ddp_trainer(name, rank, tmp_path)
        params = [p for p in trainer.network.parameters() if p.requires_grad]
        for p in params:  # DDP broadcast rank 0's weights at wrapping
            assert all(torch.equal(p.data, q) for q in gathered(p.data))

        batch = batch_for(name, rank)
        if name != "finetune":  # each rank draws its own masks
            with torch.no_grad():
                mask = trainer.mask_and_reconstruct(batch["data"])[2].float()
            masks = gathered(mask)
            assert not torch.equal(masks[0], masks[1])

        if name != "finetune":  # dropout-free pre-training: the loss is a function of (weights, data, masks)
            local, averaged = local_and_averaged_gradients(trainer, batch)
            for g_local, g_avg in zip(local, averaged):
                expected = torch.stack(gathered(g_local)).mean(0)
                torch.testing.assert_close(g_avg, expected, rtol=1e-4, atol=1e-6)

        # nnU-Net's own step, twice: an unused parameter would make DDP fail in the second step, a missing
        # all-reduce would let the ranks' weights drift apart
        for _ in range(2):
            out = trainer.train_step(batch)
            assert np.isfinite(out["loss"])
        for p in params:
            assert all(torch.allclose(p.data, q, atol=1e-6) for q in gathered(p.data))

        # validation losses are averaged over every step of every rank (rank 0: 3 steps, rank 1: 1 step)
        losses = [1.0, 2.0, 3.0] if rank == 0 else [10.0]
        if name == "mae":
            trainer.on_validation_epoch_end([{"loss": np.float32(v)} for v in losses])
            assert trainer.logger.get_value("val_losses", step=None)[-1] == pytest.approx(4.0)
        assert mean_over_ranks(losses) == pytest.approx(4.0)
    finally:
        dist.barrier()  # no rank tears the group down while another still talks to it
        dist.destroy_process_group()


@pytest.mark.parametrize("name", list(TRAINERS))
def test_trainer_steps_under_ddp(name, tmp_path):
    mp.spawn(worker, args=(str(tmp_path / "init"), tmp_path, name), nprocs=WORLD_SIZE, join=True)
