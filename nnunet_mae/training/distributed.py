"""Small helpers for code that runs the same with and without DDP / torch.compile."""

from __future__ import annotations

import numpy as np
import torch.distributed as dist
from torch import nn
from torch._dynamo import OptimizedModule
from torch.nn.parallel import DistributedDataParallel


def unwrap_network(network: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    if isinstance(network, DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network


def mean_over_ranks(values: list[float] | np.ndarray) -> float:
    """Mean of all values of all ranks (each rank may hold a different number of values)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if dist.is_available() and dist.is_initialized():
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, values)
        values = np.concatenate(gathered)
    return float(values.mean())
