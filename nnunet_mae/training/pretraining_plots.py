"""Pictures for pre-training: the progress plot (reconstruction losses instead of pseudo-Dice) and
reconstruction examples (input, masked input, reconstruction; middle slice along axis 0)."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def exponential_moving_average(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """nnU-Net's EMA (0.9 old + 0.1 new), as used for its pseudo-Dice."""
    out: list[float] = []
    for v in values:
        out.append(v if not out else weight * out[-1] + (1 - weight) * v)
    return out


def plot_pretraining_progress(logged: dict, output_folder: str, probe=None) -> str:
    """progress.png: reconstruction losses (+ EMA), the probe Dice (if `probe`, a ProbeHistory, has records),
    epoch duration and learning rate."""
    n = min(len(logged["train_losses"]), len(logged["val_losses"]), len(logged["epoch_end_timestamps"]))
    epochs = list(range(n))
    with_probe = probe is not None and bool(probe.records)
    fig, axes = plt.subplots(4 if with_probe else 3, 1, figsize=(12, 21 if with_probe else 16))
    axes[0].plot(epochs, logged["train_losses"][:n], "b-", label="reconstruction loss (train)")
    axes[0].plot(epochs, logged["val_losses"][:n], "r-", label="reconstruction loss (val, fixed masks)")
    axes[0].plot(epochs, exponential_moving_average(logged["val_losses"][:n]), "r--", label="val (moving average)")
    axes[0].set_ylabel("masked-token MSE")
    if with_probe:
        _plot_probe(axes[1], probe)
    durations = np.array(logged["epoch_end_timestamps"][:n]) - np.array(logged["epoch_start_timestamps"][:n])
    axes[-2].plot(epochs, durations, "b-", label="epoch duration [s] (probes excluded)")
    axes[-2].set_ylim(bottom=0)
    axes[-1].plot(epochs, logged["lrs"][:n], "b-", label="learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    path = os.path.join(output_folder, "progress.png")
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_probe(ax, probe) -> None:
    """Probe Dice per label and mean after each probed epoch (the baseline drawn at epoch -1), the baseline's noise
    band, and the stopping signal."""
    records = probe.records
    x = [r.epoch for r in records]
    for k in range(len(records[0].dice)):
        ax.plot(x, [r.dice[k] for r in records], "o-", alpha=0.5, label=f"probe Dice, label {k + 1}")
    ax.plot(x, [r.mean for r in records], "ko-", label="probe Dice, mean (fold-0 validation crops)")
    baseline = probe.baseline
    if baseline is not None:
        noise = probe.noise or 0.0
        ax.axhspan(baseline.mean - noise / 2, baseline.mean + noise / 2, color="grey", alpha=0.2,
                   label=f"random-init encoder (band: probe noise {noise:.3f})")
    if probe.stop_epoch is not None:
        ax.axvline(probe.stop_epoch, color="g", ls="--",
                   label=f"epoch {probe.stop_epoch}: pre-training has stopped paying; you can stop it here")
    ax.set_ylabel("probe Dice (frozen encoder)")


def _middle_slice(volume: torch.Tensor) -> np.ndarray:
    """(C, *spatial) -> first channel, middle slice along axis 0 for 3D."""
    image = volume[0]
    if image.ndim == 3:
        image = image[image.shape[0] // 2]
    return image.float().cpu().numpy()


def save_reconstruction_png(images: torch.Tensor, masked: torch.Tensor, reconstruction: torch.Tensor, path: str,
                            title: str = "") -> str:
    """One row per example: input, masked input, reconstruction (each (B, C, *spatial))."""
    rows = images.shape[0]
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for r in range(rows):
        vmin, vmax = float(images[r].min()), float(images[r].max())
        for c, (name, vol) in enumerate((("input", images), ("masked input", masked),
                                         ("reconstruction", reconstruction))):
            axes[r, c].imshow(_middle_slice(vol[r]), cmap="gray", vmin=vmin, vmax=vmax)
            axes[r, c].set_axis_off()
            if r == 0:
                axes[r, c].set_title(name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
