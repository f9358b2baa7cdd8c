"""Linear warm-up then polynomial decay, stepped with a fractional epoch (nnU-Net steps per epoch;
the trainers here step per iteration so short runs warm up smoothly).

Per-group `lr_scale` (layer-wise decay) multiplies the scheduled rate.
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler


def warmup_poly_lr(epoch: float, *, initial_lr: float, num_epochs: int, warmup_epochs: float,
                   exponent: float = 0.9) -> float:
    """Learning rate at a (fractional) epoch."""
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return initial_lr * (epoch + 1e-3) / warmup_epochs
    decay_span = max(num_epochs - warmup_epochs, 1e-8)
    progress = min(max((epoch - warmup_epochs) / decay_span, 0.0), 1.0)
    return initial_lr * (1.0 - progress) ** exponent


class WarmupPolyLRScheduler(LRScheduler):
    """Stateless given the epoch: resuming with `--c` recomputes the rate from the restored epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, initial_lr: float, num_epochs: int,
                 warmup_epochs: float, exponent: float = 0.9) -> None:
        self.initial_lr = initial_lr
        self.num_epochs = num_epochs
        self.warmup_epochs = warmup_epochs
        self.exponent = exponent
        super().__init__(optimizer, last_epoch=-1)

    def get_lr(self) -> list[float]:
        lr = warmup_poly_lr(max(self.last_epoch, 0), initial_lr=self.initial_lr, num_epochs=self.num_epochs,
                            warmup_epochs=self.warmup_epochs, exponent=self.exponent)
        return [lr * group.get("lr_scale", 1.0) for group in self.optimizer.param_groups]

    def step(self, epoch: float | None = None) -> None:  # type: ignore[override]
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
