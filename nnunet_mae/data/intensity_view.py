"""The second view of GMIM's Siamese branch: a batch-level intensity augmentation, seedable, on the device."""

from __future__ import annotations

import torch

# GMIM's second-view augmentation (released `ssl_head.py`, MONAI on [0, 1]-scaled images):
# RandAdjustContrast(prob=0.7, gamma=(0.7, 1.5)), RandShiftIntensity(offsets=0.4, prob=0.4),
# RandGaussianNoise(prob=0.5, mean=0.05, std=0.05). Offsets and noise are taken relative to each
# sample-channel's intensity range here, which is the same on [0, 1] images and scales to z-scored ones.
CONTRAST_PROBABILITY, CONTRAST_GAMMA = 0.7, (0.7, 1.5)
SHIFT_PROBABILITY, SHIFT_OFFSET = 0.4, 0.4
NOISE_PROBABILITY, NOISE_MEAN, NOISE_STD = 0.5, 0.05, 0.05


def intensity_view(images: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, *spatial) -> augmented copy: gamma contrast, intensity shift, Gaussian noise, each drawn per sample.

    Differences from MONAI's transforms on a batch: parameters are drawn per sample (MONAI draws once per
    call), contrast is applied per channel over its own [min, max], and offsets / noise are relative to
    that range. Computed in float32, returned in the input dtype.
    """
    x = images.float()
    b, device = x.shape[0], x.device
    per_sample = (b,) + (1,) * (x.ndim - 1)  # (B, 1, 1, 1[, 1])
    axes = tuple(range(2, x.ndim))
    low = x.amin(axes, keepdim=True)  # (B, C, 1, ...)
    span = (x.amax(axes, keepdim=True) - low).clamp_min(1e-7)

    def draw() -> torch.Tensor:
        return torch.rand(per_sample, device=device, generator=generator)

    gamma = CONTRAST_GAMMA[0] + (CONTRAST_GAMMA[1] - CONTRAST_GAMMA[0]) * draw()
    contrasted = ((x - low) / span).clamp(0, 1).pow(gamma) * span + low
    x = torch.where(draw() < CONTRAST_PROBABILITY, contrasted, x)
    offset = (2 * draw() - 1) * SHIFT_OFFSET * span
    x = x + offset * (draw() < SHIFT_PROBABILITY)
    noise_std = draw() * NOISE_STD * span  # MONAI samples the std in [0, std]
    noise = NOISE_MEAN * span + noise_std * torch.randn(x.shape, device=device, generator=generator)
    x = x + noise * (draw() < NOISE_PROBABILITY)
    return x.to(images.dtype)
