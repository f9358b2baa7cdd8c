import pytest
import torch

from nnunet_mae.training.lr_schedule import WarmupPolyLRScheduler, warmup_poly_lr


def test_warmup_then_poly_decay():
    lrs = [warmup_poly_lr(e / 10, initial_lr=1.0, num_epochs=100, warmup_epochs=5) for e in range(0, 1000)]
    assert lrs[0] < 0.01
    assert all(b > a for a, b in zip(lrs[:49], lrs[1:50]))  # rising during warm-up
    assert lrs[50] == pytest.approx(1.0, abs=1e-3)
    assert all(b <= a for a, b in zip(lrs[50:-1], lrs[51:]))  # decaying afterwards
    assert warmup_poly_lr(100, initial_lr=1.0, num_epochs=100, warmup_epochs=5) == 0.0


def test_scheduler_applies_group_scales_and_resumes_from_epoch():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [p1], "lr_scale": 1.0}, {"params": [p2], "lr_scale": 0.5}], lr=1.0)
    sched = WarmupPolyLRScheduler(opt, 2e-3, num_epochs=10, warmup_epochs=1)
    sched.step(4.0)
    lr = warmup_poly_lr(4.0, initial_lr=2e-3, num_epochs=10, warmup_epochs=1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr, lr / 2])
    fresh = WarmupPolyLRScheduler(torch.optim.AdamW([p1], lr=1.0), 2e-3, num_epochs=10, warmup_epochs=1)
    fresh.step(4.0)
    assert fresh.optimizer.param_groups[0]["lr"] == pytest.approx(lr)
