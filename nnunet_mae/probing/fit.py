"""Fit the probe on features of labelled crops and score it by Dice on other crops.

Only the head learns; the encoder is frozen. Every feature map is upsampled (trilinear / bilinear) to the crop, so
each voxel gets one feature vector (the concatenation over the maps), and the head classifies voxels from it
(DINOv2's linear segmentation probe, for one map or several):
- "linear": multinomial logistic regression with an L2 penalty, fitted to convergence by L-BFGS. The problem is
  convex, so the result does not depend on an initialisation: the probe's spread comes from the crops alone.
- "mlp": one hidden layer (a non-linear read-out), fitted by AdamW for a fixed number of steps.
Fitting uses a class-stratified sample of voxels of each fitting crop (each class equally represented, so that small
structures are learnt); the sampling is undone at prediction time by adding log(class share of all voxels / share of
the sample) to the logits, which makes the decision that of a classifier fitted on all voxels. Scoring: Dice per
foreground class over all voxels of the scoring crops together.

Features are handled batch by batch (`(maps, labels)` pairs): only the sampled voxels of the fitting crops are
kept, and scoring streams the scoring crops, so memory does not grow with crop count or feature resolution.
Deterministic for a seed; torch's global random state is left untouched.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -1  # label value of voxels that do not count (crop padding, nnU-Net's ignore label)
HeadType = Literal["linear", "mlp"]
Batch = tuple[Sequence[torch.Tensor], torch.Tensor]  # feature maps (B, D_s, *grid_s), labels (B, *spatial)


def features_at(maps: Sequence[torch.Tensor], index: int, voxels: torch.Tensor, spatial: Sequence[int]
                ) -> torch.Tensor:
    """Features of crop `index` at flat voxel indices `voxels` (M,): every map interpolated there as
    `F.interpolate(..., align_corners=False)` upsamples it to `spatial`, concatenated: (M, D_total) float32."""
    spatial = tuple(spatial)
    coords = torch.stack(torch.unravel_index(voxels, spatial), -1).float()  # (M, ndim) voxel indices
    normalised = ((coords + 0.5) / torch.tensor(spatial, dtype=torch.float32)) * 2 - 1  # voxel centres
    grid = normalised.flip(-1).reshape(1, -1, *([1] * (len(spatial) - 1)), len(spatial))  # grid_sample: x = last axis
    out = [F.grid_sample(f[index:index + 1].float(), grid.to(f.device), mode="bilinear", padding_mode="border",
                         align_corners=False).reshape(f.shape[1], -1).cpu() for f in maps]
    return torch.cat(out).T.contiguous()


@dataclass
class VoxelSample:
    """Sampled voxels of the fitting crops: features (M, D), classes (M,), and per class the log-ratio of its share
    of all counted voxels to its share of the sample (K,)."""

    x: torch.Tensor
    y: torch.Tensor
    log_ratio: torch.Tensor


def sample_voxels(batches: Iterable[Batch], num_classes: int, per_crop: int, generator: torch.Generator
                  ) -> VoxelSample:
    """Up to `per_crop` voxels of every crop, the same number of each class present."""
    xs, ys = [], []
    counts = torch.zeros(num_classes, dtype=torch.float64)
    per_class = max(1, per_crop // num_classes)
    for maps, labels in batches:
        for i in range(labels.shape[0]):
            flat = labels[i].long().flatten().cpu()
            counts += torch.bincount(flat[flat != IGNORE], minlength=num_classes).double()
            chosen = []
            for k in range(num_classes):
                where = (flat == k).nonzero().flatten()
                if len(where):
                    chosen.append(where[torch.randperm(len(where), generator=generator)[:per_class]])
            if chosen:
                chosen = torch.cat(chosen)
                xs.append(features_at(maps, i, chosen, labels.shape[1:]))
                ys.append(flat[chosen])
    if not xs:
        raise ValueError("The probe's fitting crops hold no labelled voxel.")
    y = torch.cat(ys)
    sampled = torch.bincount(y, minlength=num_classes).double()
    present = (sampled > 0) & (counts > 0)
    log_ratio = torch.full((num_classes,), -1e4, dtype=torch.float64)  # classes never sampled are never predicted
    log_ratio[present] = (counts[present] / counts.sum()).log() - (sampled[present] / sampled.sum()).log()
    return VoxelSample(torch.cat(xs), y, log_ratio.float())


class VoxelHead(nn.Module):
    """Standardise per channel, then a linear map or a one-hidden-layer MLP to K logits, plus a fixed offset."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int, head: HeadType = "linear",
                 hidden: int = 256) -> None:
        super().__init__()
        d = mean.numel()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("offset", torch.zeros(num_classes))
        if head == "linear":
            self.net = nn.Linear(d, num_classes)
        elif head == "mlp":
            self.net = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, num_classes))
        else:
            raise ValueError(f"head={head!r} must be 'linear' or 'mlp'.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(M, D) -> (M, K)."""
        return self.net((x - self.mean) / self.std) + self.offset

    def logits(self, maps: Sequence[torch.Tensor], spatial: Sequence[int]) -> torch.Tensor:
        """Logits of whole crops (B, K, *spatial). The linear head is applied on each map's grid and its logits
        upsampled: the same as classifying upsampled features, far cheaper. The MLP classifies interpolated
        features voxel by voxel."""
        spatial = tuple(spatial)
        if not isinstance(self.net, nn.Linear):
            voxels = torch.arange(math.prod(spatial))
            return torch.stack([
                torch.cat([self(features_at(maps, i, v, spatial)) for v in voxels.split(65536)]).T.reshape(-1, *spatial)
                for i in range(maps[0].shape[0])])
        weight = self.net.weight / self.std  # (K, D): standardisation folded in
        bias = self.net.bias - weight @ self.mean + self.offset
        logits, start = None, 0
        for f in maps:
            d = f.shape[1]
            out = torch.einsum("kd,bd...->bk...", weight[:, start:start + d].to(f.device), f.float())
            start += d
            if tuple(out.shape[2:]) != spatial:
                out = F.interpolate(out, size=spatial, mode="trilinear" if out.ndim == 5 else "bilinear",
                                    align_corners=False)
            logits = out if logits is None else logits + out
        return logits.cpu() + bias.reshape(1, -1, *([1] * len(spatial)))


def fit_head(sample: VoxelSample, num_classes: int, *, head: HeadType = "linear", l2: float = 1e-3,
             max_iter: int = 100, mlp_steps: int = 300, seed: int = 0) -> VoxelHead:
    """Fit a VoxelHead on the sampled voxels; its offset undoes the class-stratified sampling."""
    x, y = sample.x, sample.y
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VoxelHead(x.mean(0), x.std(0).clamp_min(1e-6), num_classes, head)
        z = (x - model.mean) / model.std
        if head == "linear":
            optimizer = torch.optim.LBFGS(model.net.parameters(), lr=1, max_iter=max_iter, history_size=20,
                                          tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

            def closure():
                optimizer.zero_grad()
                loss = F.cross_entropy(model.net(z), y) + l2 * model.net.weight.pow(2).sum()
                loss.backward()
                return loss

            optimizer.step(closure)
        else:
            generator = torch.Generator().manual_seed(seed)
            optimizer = torch.optim.AdamW(model.net.parameters(), lr=1e-3, weight_decay=1e-2)
            for _ in range(mlp_steps):
                index = torch.randint(len(y), (min(8192, len(y)),), generator=generator)
                loss = F.cross_entropy(model.net(z[index]), y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    model.offset.copy_(sample.log_ratio)
    return model.requires_grad_(False)


class DiceCounter:
    """Dice per foreground class over all voxels seen together (IGNORE voxels left out); NaN for a class absent
    from both prediction and labels."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.tp = torch.zeros(num_classes, dtype=torch.long)
        self.pred = torch.zeros(num_classes, dtype=torch.long)
        self.true = torch.zeros(num_classes, dtype=torch.long)

    def update(self, pred: torch.Tensor, labels: torch.Tensor) -> None:
        labels = labels.long()
        valid = labels != IGNORE
        k = self.num_classes
        self.tp += torch.bincount(labels[valid & (pred == labels)], minlength=k)
        self.pred += torch.bincount(pred[valid], minlength=k)
        self.true += torch.bincount(labels[valid], minlength=k)

    def dice(self) -> list[float]:
        out = []
        for k in range(1, self.num_classes):
            denominator = int(self.pred[k] + self.true[k])
            out.append(2 * int(self.tp[k]) / denominator if denominator else float("nan"))
        return out


def score_head(head: VoxelHead, batches: Iterable[Batch], num_classes: int) -> list[float]:
    counter = DiceCounter(num_classes)
    with torch.no_grad():
        for maps, labels in batches:
            counter.update(head.logits(maps, labels.shape[1:]).argmax(1), labels.cpu())
    return counter.dice()


def mean_dice(dice: Sequence[float]) -> float:
    return weighted_mean([(1.0, d) for d in dice])


def weighted_mean(pairs: Sequence[tuple[float, float]]) -> float:
    """Mean of the finite values of (weight, value) pairs, weighted; NaN where none is finite (e.g. a label that no
    scoring crop of any fold holds)."""
    finite = [(w, v) for w, v in pairs if not math.isnan(v)]
    return sum(w * v for w, v in finite) / sum(w for w, _ in finite) if finite else float("nan")


@dataclass
class ProbeResult:
    dice: list[float]  # per foreground class (1..K-1), on the scoring crops
    seconds: float  # features, fitting and scoring
    train_dice: list[float] = field(default_factory=list)  # on the fitting crops (if asked): the gap is overfitting

    @property
    def mean(self) -> float:
        return mean_dice(self.dice)


def run_probe(fit_batches: Callable[[], Iterable[Batch]], score_batches: Callable[[], Iterable[Batch]],
              num_classes: int, *, head: HeadType = "linear", voxels_per_crop: int = 3000, l2: float = 1e-3,
              seed: int = 0, with_train_dice: bool = False) -> ProbeResult:
    """Sample voxels from the fitting batches, fit the head, score it on the scoring batches. Each argument is a
    callable giving a fresh iterable of (maps, labels) batches (features computed on the fly or cached)."""
    start = time.perf_counter()
    sample = sample_voxels(fit_batches(), num_classes, voxels_per_crop, torch.Generator().manual_seed(seed))
    model = fit_head(sample, num_classes, head=head, l2=l2, seed=seed)
    dice = score_head(model, score_batches(), num_classes)
    train_dice = score_head(model, fit_batches(), num_classes) if with_train_dice else []
    return ProbeResult(dice=dice, seconds=time.perf_counter() - start, train_dice=train_dice)
