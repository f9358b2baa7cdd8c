"""Training-length and precision mixins for trainer variants, named the nnU-Net way:
`class nnUNetTrainerViT_5epochs(Epochs5, nnUNetTrainerViT): pass`.

Each sets attributes after the trainer's own `__init__` (nnU-Net inspects the `__init__` signature, so it
keeps nnU-Net's five parameters). Pre-training trainers also get a reconstruction PNG interval that fits.
"""

from __future__ import annotations

import torch


class Schedule:
    """Base mixin: subclasses set num_epochs and optionally iterations, val_iterations, png_every."""

    num_epochs: int
    iterations: int | None = None
    val_iterations: int | None = None
    png_every: int | None = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = type(self).num_epochs
        if self.iterations is not None:
            self.num_iterations_per_epoch = self.iterations
        if self.val_iterations is not None:
            self.num_val_iterations_per_epoch = self.val_iterations
        if self.png_every is not None and hasattr(self, "reconstruction_png_every"):
            self.reconstruction_png_every = self.png_every


class Smoke(Schedule):
    """2 epochs of 10 iterations (5 validation iterations): checks a set-up end to end in minutes on a CPU."""

    num_epochs, iterations, val_iterations, png_every = 2, 10, 5, 1


class Epochs5(Schedule):
    num_epochs, png_every = 5, 1


class Epochs50(Schedule):
    num_epochs, png_every = 50, 10


class Epochs250(Schedule):
    num_epochs = 250


class ForcedPrecision:
    """Base mixin of the precision variants: `mixed_precision` set after the trainer's own `__init__`."""

    forced_precision: str

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.mixed_precision = type(self).forced_precision


class FP32(ForcedPrecision):
    """fp32 everywhere, whatever the hardware."""

    forced_precision = "fp32"


class BF16(ForcedPrecision):
    """bf16 autocast, whatever the hardware (slow on CPUs without native bf16)."""

    forced_precision = "bf16"
