"""The measuring side of benchmarks/step_speed.py: one subprocess per (trainer, precision) builds the trainer as
nnUNetv2_train does and times its train_step (network-only and real); the torch.mm reference."""

from __future__ import annotations

import multiprocessing
import os
import queue
import statistics
import time
from pathlib import Path

from common import CONFIGURATION, DATASET, find_trainer_class


def rss_mb(field: str = "VmRSS") -> float | None:
    """Resident set size of this process from /proc (VmRSS now, VmHWM peak), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    if field == "VmHWM":
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return None


def set_paused(loader, paused: bool) -> bool:
    """Pause / resume the workers of nnU-Net's (NonDet)MultiThreadedAugmenter; False if the loader has none."""
    event = getattr(loader, "pause_event", None)
    if event is None:
        return False
    event.set() if paused else event.clear()
    return True


def drain(loader, settle_s: float = 0.5) -> int:
    """Discard the batches a paused loader has cached; returns how many."""
    queues = [q for q in (getattr(loader, "results_loop_queue", None), getattr(loader, "_queue", None))
              if q is not None]
    dropped, quiet_since = 0, time.perf_counter()
    while queues and time.perf_counter() - quiet_since < settle_s:
        got = False
        for q in queues:
            try:
                q.get_nowait()
            except (queue.Empty, OSError, ValueError):
                continue
            if hasattr(q, "task_done"):
                q.task_done()
            got, dropped = True, dropped + 1
        if got:
            quiet_since = time.perf_counter()
        else:
            time.sleep(0.01)
    return dropped


def shut_down(loader) -> None:
    if loader is not None and hasattr(loader, "_finish"):
        loader._finish()


def to_device(batch: dict, device) -> dict:
    def move(x):
        if isinstance(x, list):
            return [move(i) for i in x]
        return x.to(device, non_blocking=True) if hasattr(x, "to") else x
    return {k: move(v) if k in ("data", "target") else v for k, v in batch.items()}


def timed_phase(step, *, warmup: int, steps: int, min_steps: int, max_seconds: float, sync, warm_done: int = 0
                ) -> dict:
    """Run `step()` (returns seconds spent waiting for data, or 0) warm-up then timed, both time-bounded.

    Warm-up stops after `warmup` steps (`warm_done` of them already run by the caller) or once it took a quarter of
    `max_seconds`; the timed part stops after `steps` steps or before a step that would cross `max_seconds`, but
    never before `min_steps`.
    """
    warm_start = time.perf_counter()
    while warm_done < warmup and time.perf_counter() - warm_start < max_seconds / 4:
        step()
        warm_done += 1
    times, waits, phase_start = [], [], time.perf_counter()
    while len(times) < steps:
        sync()
        t0 = time.perf_counter()
        waits.append(step())
        sync()
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - phase_start
        if len(times) >= min_steps and elapsed + statistics.median(times) > max_seconds:
            break
    return {"warmup_steps": warm_done, "steps_timed": len(times), "median_s": statistics.median(times),
            "min_s": min(times), "max_s": max(times), "times_s": times, "median_data_wait_s": statistics.median(waits)}


def run_single(args) -> dict:
    """One (trainer, precision): network-only phase, encoder alone (ViT), then the real phase with the loader."""
    started = time.perf_counter()
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from nnunet_mae.training.distributed import unwrap_network

    device = torch.device(args.device)
    _set_threads(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    trainer = _build_trainer(args.single[0], args.batch_size, device)
    precision = args.single[1]
    ours = hasattr(trainer, "autocast")  # nnunet_mae trainers: bf16 / fp32 switch `mixed_precision`
    context, precision_note = _precision_context(trainer, ours, device, precision)
    trainer.initialize()
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    trainer.on_train_epoch_start()
    batch = to_device(next(trainer.dataloader_train), device)  # before pausing: a paused, empty loader blocks
    paused = set_paused(trainer.dataloader_train, True)
    set_paused(trainer.dataloader_val, True)  # never used here
    network = unwrap_network(trainer.network)
    result = {"trainer": type(trainer).__name__, "precision": precision, "precision_note": precision_note,
              "external_autocast": not ours and device.type == "cpu" and precision == "bf16",
              "device": str(device), "batch_size": trainer.batch_size,
              "patch_size": list(trainer.configuration_manager.patch_size),
              "input_shape": list(batch["data"].shape), "parameters": sum(p.numel() for p in network.parameters()),
              "loader": type(trainer.dataloader_train).__name__, "loader_paused_for_network_only": paused,
              "rss_before_first_step_mb": rss_mb("VmRSS")}

    def network_step() -> float:
        with context():
            trainer.train_step(batch)
        return 0.0

    phase = dict(warmup=args.warmup, steps=args.steps, min_steps=args.min_steps, max_seconds=args.max_seconds,
                 sync=sync)
    result["setup_s"] = time.perf_counter() - started
    counted = 0
    if args.count_flops:  # the counted step is the first (untimed) warm-up step
        with FlopCounterMode(display=False) as counter:
            network_step()
        result["flops_per_step"], counted = counter.get_total_flops(), 1
    result["network"] = _with_peak_memory(device, lambda: timed_phase(network_step, **phase, warm_done=counted))
    encoder = getattr(network, "encoder", None)
    if type(trainer).__name__ == "nnUNetTrainerViT" and encoder is not None:
        result["encoder"] = measure_encoder(encoder, batch["data"], trainer.autocast if ours else context, sync,
                                            args.max_seconds / 4)
    result.update(_real_phase(trainer, context, phase, device))
    result["peak_rss_mb"] = rss_mb("VmHWM")
    shut_down(trainer.dataloader_train)
    shut_down(trainer.dataloader_val)
    return result


def _set_threads(device) -> None:
    import torch

    if device.type == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())  # as nnUNetv2_train -device cpu
    else:
        torch.set_num_threads(1)  # as nnUNetv2_train -device cuda
        torch.set_num_interop_threads(1)


def _build_trainer(trainer_name: str, batch_size: int, device):
    """The trainer as nnUNetv2_train builds it, with the batch size overridden and fold `all` (no split file)."""
    from batchgenerators.utilities.file_and_folder_operations import join, load_json

    base = join(os.environ["nnUNet_preprocessed"], DATASET)
    plans = load_json(join(base, "nnUNetPlans.json"))
    plans["configurations"][CONFIGURATION]["batch_size"] = batch_size
    plans["continue_training"] = False
    return find_trainer_class(trainer_name)(plans=plans, configuration=CONFIGURATION, fold="all",
                                            dataset_json=load_json(join(base, "dataset.json")), device=device)


def _precision_context(trainer, ours: bool, device, precision: str):
    """(context around each train_step, what it means): ours switch `mixed_precision`; nnU-Net's trainers get an
    external bf16 autocast on CPU, their own fp16 AMP on CUDA."""
    import contextlib

    import torch

    if ours:
        trainer.mixed_precision = precision
        return contextlib.nullcontext, f"{precision}: trainer.mixed_precision = '{precision}'"
    if device.type == "cuda":
        return contextlib.nullcontext, "fp16 autocast + GradScaler: nnU-Net's own train_step on CUDA (not bf16)"
    if precision == "bf16":
        return (lambda: torch.autocast("cpu", dtype=torch.bfloat16),
                "bf16 by an EXTERNAL torch.autocast('cpu', bfloat16) around nnU-Net's whole train_step; "
                "nnU-Net itself never autocasts on CPU")
    return contextlib.nullcontext, "fp32: nnU-Net's own train_step (no autocast on CPU)"


def _with_peak_memory(device, measure) -> dict:
    """measure() and, on CUDA, the peak memory it allocated."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = measure()
    if device.type == "cuda":
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def _real_phase(trainer, context, phase: dict, device) -> dict:
    """Fresh batches from the running loader: the prefetched ones are dropped first, then the workers resumed."""

    def real_step() -> float:
        t0 = time.perf_counter()
        fresh = next(trainer.dataloader_train)
        wait = time.perf_counter() - t0
        with context():
            trainer.train_step(fresh)
        return wait

    set_paused(trainer.dataloader_train, True)  # already paused; settle, then empty the cache
    dropped = drain(trainer.dataloader_train)
    set_paused(trainer.dataloader_train, False)
    return {"real_batches_dropped_before_timing": dropped,
            "real": _with_peak_memory(device, lambda: timed_phase(real_step, **phase))}


def measure_encoder(encoder, data, context, sync, max_seconds: float) -> dict:
    """FLOPs and median time of `encoder` forward + backward alone (no decoder, loss or optimizer)."""
    from torch.utils.flop_counter import FlopCounterMode

    def step() -> float:
        with context():
            final, _ = encoder(data)
        final.float().mean().backward()
        encoder.zero_grad(set_to_none=True)
        return 0.0

    with FlopCounterMode(display=False) as counter:  # doubles as the warm-up
        step()
    timing = timed_phase(step, warmup=1, steps=5, min_steps=2, max_seconds=max_seconds, sync=sync, warm_done=1)
    return {"flops": counter.get_total_flops(), **timing}


def matmul_peak(device: str, size: int = 4096, repeats: int = 5, max_seconds: float = 20.0) -> dict:
    """Median TFLOP/s of torch.mm(size x size) in fp32 and bf16."""
    import torch

    if device == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out = {"size": size, "threads": torch.get_num_threads() if device == "cpu" else None}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        torch.mm(a, b)
        sync()
        times, start = [], time.perf_counter()
        while len(times) < repeats and (len(times) < 2 or time.perf_counter() - start < max_seconds):
            t0 = time.perf_counter()
            torch.mm(a, b)
            sync()
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times)
        out[name] = {"median_s": seconds, "repeats": len(times), "tflops": 2 * size ** 3 / seconds / 1e12}
    return out
