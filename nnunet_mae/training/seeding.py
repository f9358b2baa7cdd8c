"""Random streams of the trainers.

- `seed` (a trainer attribute, default None): when set, Python, NumPy and torch are seeded with it before the
  network is built, so two runs with the same seed start from the same weights, draw the same masks and give the
  same first-step loss.
- Masks come from a trainer-owned `torch.Generator` re-seeded at every epoch from (base seed, rank, epoch): DDP
  ranks draw different masks, every epoch differs, and a run resumed with `--c` draws the masks the uninterrupted
  run would have drawn in that epoch. Without `seed`, the base seed is drawn from the operating system.
"""

from __future__ import annotations

import random
import secrets

import numpy as np
import torch


def fresh_seed() -> int:
    return secrets.randbits(62)


def stream_seed(base: int, *keys: int) -> int:
    """A 63-bit seed for the stream named by `keys` (e.g. rank, epoch), independent of neighbouring keys."""
    state = np.random.SeedSequence([int(base), *(int(k) for k in keys)]).generate_state(1, dtype=np.uint64)[0]
    return int(state) >> 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_generator(device: torch.device, base: int, rank: int, epoch: int) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(stream_seed(base, rank, epoch))
    return generator
