"""The precision rule (training/precision.py) with the hardware probes patched, and the trainers following it."""

import pytest
import torch

from nnunet_mae.training import precision
from nnunet_mae.training.mae_trainer import nnUNetTrainerMAEPretrain
from nnunet_mae.training.precision import choose_precision, cpu_info
from nnunet_mae.training.trainers import nnUNetTrainerMAEPretrain_bf16, nnUNetTrainerViT_fp32
from nnunet_mae.training.vit_trainer import nnUNetTrainerViT
from tests.training.tiny_trainer import tiny_images, tiny_trainer

CPUS = {  # name: the CPU flags /proc/cpuinfo would list (those that matter here)
    "amx": {"avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"},
    "avx512_bf16": {"avx2", "avx512f", "avx512_bf16"},
    "avx512_without_bf16": {"avx2", "avx512f"},
    "avx2": {"avx2"},
}


@pytest.fixture
def patch_cpu(monkeypatch):
    def patch(name: str) -> None:
        monkeypatch.setattr(precision, "cpu_flags", lambda: set(CPUS[name]))
    return patch


@pytest.mark.parametrize("cpu, expected, reason", [
    ("amx", "bf16", "CPU with native bf16: AMX"),
    ("avx512_bf16", "bf16", "CPU with native bf16: AVX512-BF16"),
    ("avx512_without_bf16", "fp32", "CPU without native bf16: AVX512"),
    ("avx2", "fp32", "CPU without native bf16: AVX2"),
])
def test_auto_on_cpu_uses_bf16_only_where_native(patch_cpu, cpu, expected, reason):
    patch_cpu(cpu)
    choice = choose_precision("auto", "cpu")
    assert (choice.precision, choice.reason) == (expected, reason)
    assert choice.describe() == f"mixed precision: {expected} ({reason})"
    assert not choice.uses_grad_scaler


@pytest.mark.parametrize("bf16_supported, expected, scaler", [(True, "bf16", False), (False, "fp16", True)])
def test_auto_on_cuda_bf16_where_supported_else_fp16_with_scaler(monkeypatch, bf16_supported, expected, scaler):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_supported)
    choice = choose_precision("auto", torch.device("cuda"))
    assert choice.precision == expected and choice.uses_grad_scaler == scaler


@pytest.mark.parametrize("explicit", ["bf16", "fp16", "fp32"])
def test_explicit_choices_are_honoured_on_any_hardware(patch_cpu, explicit):
    patch_cpu("avx2")
    assert choose_precision(explicit, "cpu").precision == explicit
    patch_cpu("amx")
    assert choose_precision(explicit, "cpu").precision == explicit


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="'bf32' is not one of auto, bf16, fp16, fp32"):
        choose_precision("bf32", "cpu")


def test_autocast_dtype_follows_the_choice(patch_cpu):
    patch_cpu("amx")
    with choose_precision("auto", "cpu").autocast("cpu"):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    patch_cpu("avx2")
    with choose_precision("auto", "cpu").autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")


def test_cpu_info_reads_the_kernel_flags_and_agrees_with_torch():
    info = cpu_info()
    assert info.model
    assert info.native_bf16 == (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def _log_text(trainer) -> str:
    with open(trainer.log_file) as f:
        return f.read()


@pytest.mark.parametrize("cpu, expected", [("avx2", "fp32"), ("amx", "bf16")])
def test_trainer_default_is_auto_and_logs_the_choice_and_reason(patch_cpu, tmp_path, monkeypatch, cpu, expected):
    patch_cpu(cpu)
    trainer = tiny_trainer(nnUNetTrainerViT, tmp_path, monkeypatch)
    assert trainer.mixed_precision == "auto"
    trainer.initialize()
    assert trainer.precision().precision == expected and trainer.grad_scaler is None
    assert f"mixed precision: {expected} (CPU with" in _log_text(trainer)
    with trainer.autocast():
        assert torch.is_autocast_enabled("cpu") == (expected == "bf16")


def test_variants_force_their_precision_whatever_the_cpu(patch_cpu, tmp_path, monkeypatch):
    patch_cpu("amx")
    assert tiny_trainer(nnUNetTrainerViT_fp32, tmp_path / "a", monkeypatch).precision().precision == "fp32"
    patch_cpu("avx2")
    assert tiny_trainer(nnUNetTrainerMAEPretrain_bf16, tmp_path / "b", monkeypatch).precision().precision == "bf16"


def _fp16_pretrainer(path, monkeypatch):
    trainer = tiny_trainer(nnUNetTrainerMAEPretrain, path, monkeypatch)
    trainer.mixed_precision = "fp16"
    trainer.seed = 3
    trainer.initialize()
    trainer.on_train_epoch_start()
    return trainer


def test_fp16_trains_with_a_grad_scaler_whose_state_survives_resume(tmp_path, monkeypatch):
    """fp16 (CUDA's choice on GPUs without bf16) runs here on the CPU: the scaler scales the loss, its state is
    saved in the checkpoint and restored by nnU-Net's load_checkpoint (the --c path)."""
    trainer = _fp16_pretrainer(tmp_path / "a", monkeypatch)
    assert isinstance(trainer.grad_scaler, torch.amp.GradScaler)
    assert "mixed precision: fp16 (set explicitly)" in _log_text(trainer)
    before = [p.detach().clone() for p in trainer.network.parameters()]
    for _ in range(10):  # the scaler skips a step whose fp16 gradients overflow, and lowers its scale
        loss = trainer.train_step({"data": tiny_images(), "target": None})["loss"]
        if any(not torch.equal(a, b) for a, b in zip(before, trainer.network.parameters())):
            break
    assert loss > 0 and any(not torch.equal(a, b) for a, b in zip(before, trainer.network.parameters()))
    assert trainer.grad_scaler.get_scale() > 0
    trainer.grad_scaler.update(1234.0)  # a state a fresh scaler does not have
    trainer.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))

    resumed = tiny_trainer(nnUNetTrainerMAEPretrain, tmp_path / "b", monkeypatch)
    resumed.mixed_precision = "fp16"
    resumed.load_checkpoint(str(tmp_path / "checkpoint_latest.pth"))  # initialises, then restores
    assert resumed.grad_scaler.get_scale() == 1234.0
    assert resumed.grad_scaler.state_dict() == trainer.grad_scaler.state_dict()

