"""Which arithmetic a network runs in on this machine: the one owner of the precision rule.

`mixed_precision = "auto"` (the default of every trainer of the package) resolves to:
- CUDA: bf16 autocast where the GPU supports bf16 (Ampere and newer), else fp16 autocast with a GradScaler
  (what nnU-Net itself does on every GPU);
- CPU: bf16 autocast only where the CPU computes bf16 natively (AMX or AVX512-BF16), else fp32. Without native
  bf16, PyTorch emulates it and bf16 autocast was measured 8-30x *slower* than fp32 (AMD EPYC, AVX2 only);
- anything else (e.g. MPS): fp32.
"bf16", "fp16" and "fp32" are explicit choices and are honoured as given.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class CPUInfo:
    """The CPU's model name and what it offers for bf16 (from its feature flags)."""
    model: str
    amx: bool
    avx512_bf16: bool
    capability: str  # the widest vector unit: "AVX512", "AVX2", or the machine type (e.g. "aarch64")

    @property
    def native_bf16(self) -> bool:
        return self.amx or self.avx512_bf16

    @property
    def bf16_support(self) -> str:
        """Short description, e.g. "AMX", "AVX512-BF16", "no native bf16: AVX2"."""
        if self.amx:
            return "AMX"
        if self.avx512_bf16:
            return "AVX512-BF16"
        return f"no native bf16: {self.capability}"


def _cpuinfo_field(key: str) -> str | None:
    """The value of the first `key : value` line of /proc/cpuinfo, or None where there is none (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    """The CPU's feature flags as the kernel reports them (/proc/cpuinfo, what `lscpu` shows). Where there is no
    /proc/cpuinfo (macOS, Windows), PyTorch's own probes answer for the two flags that matter here."""
    flags = _cpuinfo_field("flags")
    if flags is not None:
        return set(flags.split())
    probes = {"amx_tile": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    found = set()
    for flag, name in probes.items():
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                found.add(flag)
        except Exception:
            pass
    return found


def cpu_model_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_info() -> CPUInfo:
    flags = cpu_flags()
    capability = "AVX512" if "avx512f" in flags else "AVX2" if "avx2" in flags else (
        platform.machine() or "unknown")
    return CPUInfo(model=cpu_model_name(), amx="amx_tile" in flags, avx512_bf16="avx512_bf16" in flags,
                   capability=capability)


@dataclass(frozen=True)
class Precision:
    """The resolved choice: what was asked, what is used, and why."""
    requested: str
    precision: str  # "bf16", "fp16" or "fp32"
    reason: str

    @property
    def uses_grad_scaler(self) -> bool:
        return self.precision == "fp16"

    def autocast(self, device_type: str):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=DTYPES[self.precision])

    def describe(self) -> str:
        return f"mixed precision: {self.precision} ({self.reason})"


def choose_precision(requested: str, device: torch.device | str) -> Precision:
    """Resolve `requested` ("auto", "bf16", "fp16" or "fp32") for `device`."""
    if requested not in PRECISIONS:
        raise ValueError(f"mixed_precision={requested!r} is not one of {', '.join(PRECISIONS)}. Use 'auto' (bf16 where "
                         f"the hardware computes it natively, fp16 + GradScaler on older GPUs, else fp32).")
    device_type = torch.device(device).type
    if requested != "auto":
        return Precision(requested, requested, "set explicitly")
    if device_type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision(requested, "bf16", "GPU with bf16 support")
        return Precision(requested, "fp16", "GPU without bf16 support: fp16 autocast with a GradScaler")
    if device_type == "cpu":
        info = cpu_info()
        if info.native_bf16:
            return Precision(requested, "bf16", f"CPU with native bf16: {info.bf16_support}")
        return Precision(requested, "fp32", f"CPU without native bf16: {info.capability}")
    return Precision(requested, "fp32", f"device type {device_type!r}: fp32")


def measure_bf16_speedup(seconds: float = 1.0) -> dict[str, float]:
    """fp32 time / bf16-autocast time of a small Conv3d forward+backward and a Linear forward+backward on the CPU,
    timed interleaved for about `seconds` in all (> 1: bf16 is faster here): the median over rounds of the ratio
    of adjacent calls, so that a round where another process took the core does not decide. A quick look, not a
    benchmark."""
    import statistics
    import time

    generator = torch.Generator().manual_seed(0)
    conv, linear = torch.nn.Conv3d(8, 8, 3, padding=1), torch.nn.Linear(192, 768)
    work = {"conv3d": (conv, torch.randn(1, 8, 16, 20, 16, generator=generator)),
            "matmul": (linear, torch.randn(256, 192, generator=generator))}
    ratios: dict[str, list[float]] = {name: [] for name in work}

    def step(module, x, bf16):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            module(x).float().sum().backward()

    for name, (module, x) in work.items():  # warm-up: first calls pick kernels
        step(module, x, False), step(module, x, True)
    deadline = time.perf_counter() + seconds
    rounds = 0
    while time.perf_counter() < deadline or rounds < 3:
        for name, (module, x) in work.items():
            seconds_of = {}
            for bf16 in (False, True):
                start = time.perf_counter()
                step(module, x, bf16)
                seconds_of[bf16] = time.perf_counter() - start
            ratios[name].append(seconds_of[False] / max(seconds_of[True], 1e-9))
        rounds += 1
    return {name: statistics.median(values) for name, values in ratios.items()}
