"""The probe's record over a pre-training run, its noise, and the stopping signal.

The stopping signal: pre-training "has stopped paying" once the best mean probe Dice of the last `patience` probes is
not above the best before them by more than the probe's own noise (the spread of the mean Dice over probe seeds,
measured on the random-init encoder before the first step).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass
class ProbeRecord:
    epoch: int  # -1: before the first step (the random-init baseline)
    iterations: int  # training iterations done when the probe ran
    train_seconds: float  # training wall-clock until then (probes excluded)
    dice: list[float]  # per foreground label
    probe_seconds: float

    @property
    def mean(self) -> float:
        finite = [d for d in self.dice if not math.isnan(d)]
        return sum(finite) / len(finite) if finite else float("nan")


@dataclass
class ProbeHistory:
    records: list[ProbeRecord] = field(default_factory=list)
    noise: float | None = None  # spread (max - min) of the baseline's mean Dice over probe seeds
    noise_seeds: list[float] = field(default_factory=list)  # those means
    stop_epoch: int | None = None  # the epoch at which the stopping signal was first given

    def add(self, record: ProbeRecord) -> None:
        self.records = [r for r in self.records if r.epoch != record.epoch] + [record]
        self.records.sort(key=lambda r: r.epoch)

    @property
    def baseline(self) -> ProbeRecord | None:
        return next((r for r in self.records if r.epoch < 0), None)

    def best(self) -> ProbeRecord | None:
        trained = [r for r in self.records if r.epoch >= 0 and not math.isnan(r.mean)]
        return max(trained, key=lambda r: r.mean) if trained else None

    def stopped_paying(self, patience: int) -> bool:
        """True when the last `patience` probes brought no gain above the noise over every probe before them."""
        if self.noise is None or patience < 1 or len(self.records) <= patience:
            return False
        earlier, recent = self.records[:-patience], self.records[-patience:]
        before = max(r.mean for r in earlier)
        return max(r.mean for r in recent) <= before + self.noise

    def to_dict(self) -> dict:
        return {"records": [asdict(r) for r in self.records], "noise": self.noise, "noise_seeds": self.noise_seeds,
                "stop_epoch": self.stop_epoch}

    @classmethod
    def from_dict(cls, values: dict | None) -> "ProbeHistory":
        if not values:
            return cls()
        return cls(records=[ProbeRecord(**r) for r in values.get("records", [])], noise=values.get("noise"),
                   noise_seeds=list(values.get("noise_seeds", [])), stop_epoch=values.get("stop_epoch"))
