"""Features of a frozen network for the probe: a reader run over crops in batches."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

FeatureReader = Callable[[nn.Module, torch.Tensor], Sequence[torch.Tensor]]  # images -> maps (B, D_s, *grid_s)


@torch.no_grad()
def feature_batches(read: FeatureReader, network: nn.Module, images: np.ndarray, labels: np.ndarray, *,
                    device: torch.device, batch_size: int = 4, autocast=contextlib.nullcontext
                    ) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
    """(maps, labels) per batch of crops: the maps as read by `read` from the frozen (eval-mode) network, float32
    on `device`; labels (B, *spatial) on the CPU."""
    was_training = network.training
    network.eval()
    try:
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
            with autocast():
                maps = [m.detach().float() for m in read(network, x)]
            yield maps, torch.from_numpy(np.asarray(labels[start:start + batch_size]))
    finally:
        network.train(was_training)


def cached(batches) -> Callable[[], list]:
    """Keep the batches (maps in bfloat16 on the CPU) so that several probes read them without recomputing."""
    kept = [([m.to("cpu", torch.bfloat16) for m in maps], labels) for maps, labels in batches]
    return lambda: kept
