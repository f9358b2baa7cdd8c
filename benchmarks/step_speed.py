"""Training-step speed on Hippocampus 3d_fullres: nnU-Net's CNN and Primus-S against the ViT, MAE and GMIM trainers.

For each (trainer, precision) a fresh subprocess builds the trainer as `nnUNetv2_train` does (plans from the
preprocessed folder, batch size overridden, fold `all`), calls `initialize()`, `get_dataloaders()` and
`on_train_epoch_start()`, then times `trainer.train_step(batch)`:

- network-only: the same batch, already on the device, every step (the data-augmentation workers are paused);
- real: a fresh batch from nnU-Net's own loader every step (`next(trainer.dataloader_train)` is inside the timed
  interval); the loader's cache is emptied first, so the numbers are steady state, not a drained prefetch queue.

Each phase runs `--warmup` untimed steps, then up to `--steps` timed steps, stopping earlier once the next step
would take it past `--max-seconds` (never fewer than `--min-steps`); the number of timed steps is recorded.
FLOPs of one step (forward + backward, matmul/conv/attention only) come from `torch.utils.flop_counter`, the
hardware reference from `torch.mm` of 4096 x 4096 on the same machine with the same thread count.

    python benchmarks/step_speed.py                       # about 12-15 min on 2 CPU cores
    python benchmarks/step_speed.py --device cuda
    python benchmarks/step_speed.py --trainers nnUNetTrainerViT --precisions bf16 --steps 2 --warmup 1

Writes results.json, results.md and speed.png into --out. Needs Dataset004_Hippocampus preprocessed for
3d_fullres in --work (benchmarks/segmentation_quality.py lays it out; this script runs the preprocessing if the
folder is absent).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "Dataset004_Hippocampus"
DATASET = "Dataset004_Hippocampus"
CONFIGURATION = "3d_fullres"
TRAINERS = ["nnUNetTrainer", "nnUNet_Primus_S_Trainer", "nnUNetTrainerViT", "nnUNetTrainerMAEPretrain",
            "nnUNetTrainerGMIMPretrain"]
SHORT = {"nnUNetTrainer": "CNN", "nnUNet_Primus_S_Trainer": "Primus-S", "nnUNetTrainerViT": "ViT-S",
         "nnUNetTrainerMAEPretrain": "MAE", "nnUNetTrainerGMIMPretrain": "GMIM",
         "nnUNetTrainerViT_patchdec": "ViT-S patch decoder"}
PRECISIONS = ["fp32", "bf16"]
MODES = ["network", "real"]
MODE_TITLES = {"network": "network-only (same batch, on the device)",
               "real": "real (fresh batch from nnU-Net's loader each step)"}

# Thresholds the derived ratios are checked against: (comparison, threshold, what it means). Change them here if the
# issue states other numbers; results.md prints them next to the measured values.
TARGETS = {  # from the benchmark issue
    "mae_over_vit": ("<=", 0.35, "an MAE pre-training step costs at most 0.35x a ViT fine-tuning step"),
    "vit_over_primus": ("<=", 0.8, "a ViT-S fine-tuning step costs at most 0.8x a Primus-S step"),
    "vit_over_cnn": ("<=", 0.3, "a ViT-S fine-tuning step costs at most 0.3x nnU-Net's CNN step"),
    "bf16_speedup": (">=", 1.7, "bf16 is at least 1.7x faster than fp32 on CPU (our trainers)"),
    "real_over_network": ("<=", 1.15, "data loading adds at most 15% to a step"),
}


# ----- the measuring subprocess ---------------------------------------------------------------------------------------
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
    queues = [q for q in (getattr(loader, "results_loop_queue", None), getattr(loader, "_queue", None)) if q is not None]
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
    started = time.perf_counter()
    import contextlib

    import torch
    from batchgenerators.utilities.file_and_folder_operations import join, load_json
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(multiprocessing.cpu_count())  # as nnUNetv2_train -device cpu
    else:
        torch.set_num_threads(1)  # as nnUNetv2_train -device cuda
        torch.set_num_interop_threads(1)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    trainer_class = find_trainer_class(args.single[0])
    precision = args.single[1]
    ours = hasattr(trainer_class, "autocast")  # nnunet_mae trainers: bf16 / fp32 switch `mixed_precision`
    base = join(os.environ["nnUNet_preprocessed"], DATASET)
    plans = load_json(join(base, "nnUNetPlans.json"))
    plans["configurations"][CONFIGURATION]["batch_size"] = args.batch_size
    plans["continue_training"] = False
    trainer = trainer_class(plans=plans, configuration=CONFIGURATION, fold="all",
                            dataset_json=load_json(join(base, "dataset.json")), device=device)
    if ours:
        trainer.mixed_precision = precision
        context, precision_note = contextlib.nullcontext, f"{precision}: trainer.mixed_precision = '{precision}'"
    elif device.type == "cuda":
        context = contextlib.nullcontext
        precision_note = "fp16 autocast + GradScaler: nnU-Net's own train_step on CUDA (not bf16)"
    elif precision == "bf16":
        context = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
        precision_note = ("bf16 by an EXTERNAL torch.autocast('cpu', bfloat16) around nnU-Net's whole train_step; "
                          "nnU-Net itself never autocasts on CPU")
    else:
        context, precision_note = contextlib.nullcontext, "fp32: nnU-Net's own train_step (no autocast on CPU)"

    trainer.initialize()
    trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
    trainer.on_train_epoch_start()
    batch = to_device(next(trainer.dataloader_train), device)  # before pausing: a paused, empty loader blocks
    paused = set_paused(trainer.dataloader_train, True)
    set_paused(trainer.dataloader_val, True)  # never used here
    network = trainer.network.module if hasattr(trainer.network, "module") else trainer.network
    network = getattr(network, "_orig_mod", network)
    result = {"trainer": trainer_class.__name__, "precision": precision, "precision_note": precision_note,
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

    def real_step() -> float:
        t0 = time.perf_counter()
        fresh = next(trainer.dataloader_train)
        wait = time.perf_counter() - t0
        with context():
            trainer.train_step(fresh)
        return wait

    phase = dict(warmup=args.warmup, steps=args.steps, min_steps=args.min_steps, max_seconds=args.max_seconds,
                 sync=sync)
    result["setup_s"] = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    counted = 0
    if args.count_flops:  # the counted step is the first (untimed) warm-up step
        with FlopCounterMode(display=False) as counter:
            network_step()
        result["flops_per_step"], counted = counter.get_total_flops(), 1
    result["network"] = timed_phase(network_step, **phase, warm_done=counted)
    if device.type == "cuda":
        result["network"]["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20

    encoder = getattr(network, "encoder", None)
    if trainer_class.__name__ == "nnUNetTrainerViT" and encoder is not None:
        result["encoder"] = measure_encoder(encoder, batch["data"], trainer.autocast if ours else context, sync,
                                            args.max_seconds / 4)

    set_paused(trainer.dataloader_train, True)  # already paused; settle, then empty the cache
    result["real_batches_dropped_before_timing"] = drain(trainer.dataloader_train)
    set_paused(trainer.dataloader_train, False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result["real"] = timed_phase(real_step, **phase)
    if device.type == "cuda":
        result["real"]["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    result["peak_rss_mb"] = rss_mb("VmHWM")
    shut_down(trainer.dataloader_train)
    shut_down(trainer.dataloader_val)
    return result


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


def find_trainer_class(name: str):
    import nnunet_mae.training.trainers as ours

    if hasattr(ours, name):
        return getattr(ours, name)
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    return recursive_find_trainer_class_by_name(name)


# ----- the parent: machine, matmul reference, one subprocess per run, report ------------------------------------------
def machine_info(device: str) -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": multiprocessing.cpu_count(), "device": device}
    from nnunet_mae.training.precision import choose_precision, cpu_flags, cpu_info

    cpu = cpu_info()
    info["cpu"] = cpu.model
    info["cpu_flags"] = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    info["cpu_capability"] = cpu.capability
    info["cpu_bf16"] = cpu.bf16_support
    info["auto_precision"] = choose_precision("auto", device).describe()
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    return info


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


def check_workspace(args, env: dict) -> None:
    for sub in ("raw", "preprocessed", "logs"):
        (args.work / sub).mkdir(parents=True, exist_ok=True)
    link = args.work / "raw" / DATASET
    if not link.exists():
        link.symlink_to(args.data.resolve())
    base = args.work / "preprocessed" / DATASET
    folder = base / f"nnUNetPlans_{CONFIGURATION}"
    if not folder.is_dir():
        print(f"Preprocessing {DATASET} for {CONFIGURATION} into {base} ...", flush=True)
        with open(args.work / "logs" / "plan.log", "w") as log:
            subprocess.run(["nnUNetv2_plan_and_preprocess", "-d", "4", "-c", CONFIGURATION, "-np", "2"], env=env,
                           stdout=log, stderr=subprocess.STDOUT, check=True)
    expected = json.loads((base / "dataset.json").read_text()).get("numTraining")
    cases = {p.name.split(".")[0] for p in folder.iterdir() if p.suffix in (".b2nd", ".npz", ".npy", ".pkl")}
    cases = {c[:-4] if c.endswith("_seg") else c for c in cases}
    if expected and len(cases) < expected:
        sys.exit(f"{folder} holds {len(cases)} of {expected} cases: preprocessing is incomplete or still running.")


def run_child(args, env: dict, trainer: str, precision: str, count_flops: bool, logs: Path) -> dict:
    result_file = logs / f"{trainer}_{precision}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--single", trainer, precision,
               "--result-file", str(result_file), "--device", args.device, "--batch-size", str(args.batch_size),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--min-steps", str(args.min_steps),
               "--max-seconds", str(args.max_seconds)] + (["--count-flops"] if count_flops else [])
    log = logs / f"{trainer}_{precision}.log"
    start = time.time()
    with open(log, "w") as f:
        try:
            code = subprocess.run(command, env=env, stdout=f, stderr=subprocess.STDOUT,
                                  timeout=args.run_timeout).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    wall = time.time() - start
    if code != 0 or not result_file.is_file():
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"  {trainer} {precision}: FAILED ({code}); log {log}\n    " + "\n    ".join(tail), flush=True)
        return {"trainer": trainer, "precision": precision, "error": f"exit {code}", "log_tail": tail,
                "wall_s": wall}
    result = json.loads(result_file.read_text())
    result["wall_s"] = wall
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainers", default=",".join(TRAINERS), help="comma-separated trainer class names")
    parser.add_argument("--precisions", default="auto",
                        help="comma-separated, from fp32,bf16; 'auto': fp32, plus bf16 where the trainers' rule "
                             "(nnunet_mae/training/precision.py) would choose it (bf16 is emulated, 8-30x slower, on "
                             "CPUs without native bf16)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--batch-size", type=int, default=9, help="overrides the plans' batch size (default 9)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per phase (at most)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before each phase")
    parser.add_argument("--min-steps", type=int, default=2, help="timed steps per phase (at least)")
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="time bound of a timed phase: stop before a step that would cross it (warm-up: a "
                             "quarter of it)")
    parser.add_argument("--n-proc-da", type=int, default=2,
                        help="nnUNet_n_proc_DA: data-augmentation worker processes (nnU-Net's default here is "
                             "min(12, cpu_count))")
    parser.add_argument("--compile", action="store_true",
                        help="let nnU-Net torch.compile the network on CUDA (default: nnUNet_compile=f)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet_mae_quality"),
                        help="nnU-Net workspace with raw/ and preprocessed/ (shared with segmentation_quality.py)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "step_speed")
    parser.add_argument("--run-timeout", type=float, default=900, help="seconds before a subprocess is killed")
    parser.add_argument("--single", nargs=2, metavar=("TRAINER", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count-flops", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.single:
        result = run_single(args)
        args.result_file.write_text(json.dumps(result, indent=2))
        return 0

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    trainers = [t for t in args.trainers.split(",") if t]
    precisions = [p for p in args.precisions.split(",") if p]
    if precisions == ["auto"]:
        from nnunet_mae.training.precision import choose_precision

        auto = choose_precision("auto", args.device)
        precisions = ["fp32"] + (["bf16"] if auto.precision == "bf16" else [])
        print(f"--precisions auto: {', '.join(precisions)} (the trainers choose {auto.describe()})", flush=True)
    if set(precisions) - set(PRECISIONS):
        parser.error(f"--precisions must be from {PRECISIONS}")
    temp = Path(tempfile.mkdtemp(prefix="step_speed_"))
    logs = temp / "logs"
    logs.mkdir()
    env = dict(os.environ, nnUNet_raw=str(args.work / "raw"), nnUNet_preprocessed=str(args.work / "preprocessed"),
               nnUNet_results=str(temp / "results"), nnUNet_n_proc_DA=str(args.n_proc_da),
               nnUNet_compile="t" if args.compile else "f")
    check_workspace(args, env)
    args.out.mkdir(parents=True, exist_ok=True)

    start = time.time()
    results = {"command": " ".join([Path(sys.executable).name] + sys.argv), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "machine": machine_info(args.device), "load_average_at_start": os.getloadavg(),
               "settings": {"batch_size": args.batch_size, "configuration": CONFIGURATION, "dataset": DATASET,
                            "fold": "all", "steps": args.steps, "warmup": args.warmup, "min_steps": args.min_steps,
                            "max_seconds": args.max_seconds, "nnUNet_n_proc_DA": args.n_proc_da,
                            "nnUNet_compile": env["nnUNet_compile"],
                            "torch_threads": multiprocessing.cpu_count() if args.device == "cpu" else 1},
               "targets": {k: list(v) for k, v in TARGETS.items()}}
    print(f"torch.mm reference on {args.device} ...", flush=True)
    results["matmul_peak"] = matmul_peak(args.device)
    print("  " + ", ".join(f"{p} {results['matmul_peak'][p]['tflops']:.3f} TFLOP/s" for p in PRECISIONS), flush=True)

    runs, flops = [], {}
    for trainer in trainers:
        for precision in precisions:
            if args.device == "cuda" and trainer in ("nnUNetTrainer", "nnUNet_Primus_S_Trainer") and precision == "fp32":
                print(f"  {trainer} fp32: skipped (nnU-Net's train_step always autocasts to fp16 on CUDA)", flush=True)
                continue
            print(f"{trainer} {precision} ... (elapsed {time.time() - start:.0f} s)", flush=True)
            run = run_child(args, env, trainer, precision, trainer not in flops, logs)
            if "flops_per_step" in run:
                flops[trainer] = run["flops_per_step"]
            runs.append(run)
            if "error" not in run:
                print(f"  network-only {run['network']['median_s']:.3f} s ({run['network']['steps_timed']} steps), "
                      f"real {run['real']['median_s']:.3f} s ({run['real']['steps_timed']} steps), "
                      f"peak RSS {run['peak_rss_mb']:.0f} MiB, {run['wall_s']:.0f} s", flush=True)
    for run in runs:
        if "error" not in run and run["trainer"] in flops:
            run["flops_per_step"] = flops[run["trainer"]]
    results["runs"] = runs
    results["load_average_at_end"] = os.getloadavg()
    results["total_seconds"] = time.time() - start
    results["ratios"] = derived_ratios(runs, args.device)
    add_efficiency(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    markdown = write_markdown(results)
    (args.out / "results.md").write_text(markdown)
    plot(results, args.out / "speed.png")
    shutil.rmtree(temp / "results", ignore_errors=True)
    print("\n" + markdown)
    print(f"Written to {args.out}; subprocess logs in {logs}")
    return 0


# ----- derived numbers ------------------------------------------------------------------------------------------------
def find_run(runs: list[dict], trainer: str, precision: str) -> dict | None:
    return next((r for r in runs if r["trainer"] == trainer and r["precision"] == precision and "error" not in r), None)


def default_precision(trainer: str, device: str) -> str:
    """The precision a trainer trains in when left alone: ours bf16; nnU-Net's fp32 on CPU, fp16 AMP on CUDA."""
    if trainer in ("nnUNetTrainer", "nnUNet_Primus_S_Trainer"):
        return "bf16" if device == "cuda" else "fp32"  # on CUDA the 'bf16' slot holds nnU-Net's own fp16 AMP
    return "bf16"


def derived_ratios(runs: list[dict], device: str) -> list[dict]:
    ratios = []

    def add(key: str, label: str, numerator: tuple[str, str], denominator: tuple[str, str], mode: str, *,
            invert: bool = False):
        a, b = find_run(runs, *numerator), find_run(runs, *denominator)
        if a is None or b is None:
            return
        value = a[mode]["median_s"] / b[mode]["median_s"]
        if invert:
            value = 1 / value
        entry = {"key": key, "label": label, "mode": mode, "value": value, "numerator": list(numerator),
                 "denominator": list(denominator)}
        if key in TARGETS:
            op, threshold, _ = TARGETS[key]
            entry["target"] = f"{op} {threshold}"
            entry["met"] = value <= threshold if op == "<=" else value >= threshold
        ratios.append(entry)

    vit, mae = "nnUNetTrainerViT", "nnUNetTrainerMAEPretrain"
    for mode in MODES:
        for p in PRECISIONS:
            add("mae_over_vit", f"MAE step / ViT step ({p})", (mae, p), (vit, p), mode)
            add("gmim_over_vit", f"GMIM step / ViT step ({p})", ("nnUNetTrainerGMIMPretrain", p), (vit, p), mode)
        for other, key, short in (("nnUNet_Primus_S_Trainer", "vit_over_primus", "Primus-S"),
                                  ("nnUNetTrainer", "vit_over_cnn", "CNN")):
            if device == "cuda":  # nnU-Net's trainers ran once, in their own fp16 AMP (the 'bf16' slot)
                add(key, f"ViT step (bf16) / {short} step (nnU-Net's own fp16 AMP)", (vit, "bf16"), (other, "bf16"),
                    mode)
                continue
            add(key, f"ViT step / {short} step (both fp32)", (vit, "fp32"), (other, "fp32"), mode)
            add(key, f"ViT step / {short} step (both bf16; theirs by external autocast)", (vit, "bf16"),
                (other, "bf16"), mode)
            add(key, f"ViT step (bf16) / {short} step as nnU-Net trains it (fp32 on CPU)", (vit, "bf16"),
                (other, default_precision(other, device)), mode)
        for trainer in TRAINERS:
            ours = hasattr_autocast(trainer)
            add("bf16_speedup" if ours else "bf16_speedup_external",
                f"bf16 speed-up over fp32, {SHORT.get(trainer, trainer)} (fp32 time / bf16 time"
                + ("" if ours else ", bf16 by external autocast") + ")", (trainer, "fp32"), (trainer, "bf16"), mode)
    for run in runs:
        if "error" in run:
            continue
        value = run["real"]["median_s"] / run["network"]["median_s"]
        op, threshold, _ = TARGETS["real_over_network"]
        ratios.append({"key": "real_over_network", "mode": "real / network-only", "value": value,
                       "label": f"real step / network-only step, {SHORT.get(run['trainer'], run['trainer'])} "
                                f"({run['precision']})", "target": f"{op} {threshold}", "met": value <= threshold})
    return ratios


def hasattr_autocast(trainer: str) -> bool:
    return trainer not in ("nnUNetTrainer", "nnUNet_Primus_S_Trainer")


def add_efficiency(results: dict) -> None:
    """Achieved TFLOP/s (FLOPs of one step / median network-only step) and % of the torch.mm reference."""
    peak = results["matmul_peak"]
    for run in results["runs"]:
        if "error" in run or "flops_per_step" not in run:
            continue
        reference = peak["bf16" if run["precision"] == "bf16" else "fp32"]["tflops"]
        for mode in MODES:
            achieved = run["flops_per_step"] / run[mode]["median_s"] / 1e12
            run[mode]["achieved_tflops"] = achieved
            run[mode]["percent_of_matmul_peak"] = 100 * achieved / reference
        if "encoder" in run:
            enc = run["encoder"]
            enc["achieved_tflops"] = enc["flops"] / enc["median_s"] / 1e12
            enc["percent_of_matmul_peak"] = 100 * enc["achieved_tflops"] / reference
            enc["flops_share_of_step"] = enc["flops"] / run["flops_per_step"]
            enc["time_share_of_network_only_step"] = enc["median_s"] / run["network"]["median_s"]


# ----- report ---------------------------------------------------------------------------------------------------------
def fmt(value, spec: str = ".3f", missing: str = "-") -> str:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def write_markdown(results: dict) -> str:
    m, s = results["machine"], results["settings"]
    hardware = m.get("gpu") or f"{m.get('cpu')} ({m['cpu_count']} cores; {', '.join(m.get('cpu_flags', []))})"
    device = results["runs"][0]["device"] if results["runs"] and "device" in results["runs"][0] else m["device"]
    load = ", ".join(f"{x:.2f}" for x in results["load_average_at_start"])
    lines = [f"# Training-step speed, {s['dataset']} {s['configuration']}", "",
             f"{results['date']} on {hardware}; torch {m['torch']}, {s['torch_threads']} torch thread(s), device "
             f"{device}. Batch {s['batch_size']}, fold `all`, nnUNet_n_proc_DA={s['nnUNet_n_proc_DA']}, "
             f"nnUNet_compile={s['nnUNet_compile']}. Load average at start: {load}.", "",
             f"Command: `{results['command']}` ({results['total_seconds']:.0f} s).", "",
             f"Each cell: median seconds per `train_step` over the timed steps (count in brackets; up to {s['steps']} "
             f"after {s['warmup']} warm-up steps, fewer where a phase would pass {s['max_seconds']:.0f} s). FLOPs: "
             "one training step (forward + backward; matmul, convolution and attention only) counted by "
             "`torch.utils.flop_counter.FlopCounterMode`; % peak: achieved FLOP/s over the measured `torch.mm` "
             "4096x4096 rate of the same precision.", ""]
    if results["load_average_at_start"][0] > 0.5 * m["cpu_count"] and m["device"] == "cpu":
        lines += [f"**Warning: the machine was busy at the start (load {load} on {m['cpu_count']} cores); "
                  "the timings are not trustworthy.**", ""]
    peak = results["matmul_peak"]
    lines += ["torch.mm reference: " + ", ".join(f"{p} {peak[p]['tflops']:.3f} TFLOP/s" for p in PRECISIONS) + ".", ""]
    memory = "peak memory [MiB] (torch.cuda.max_memory_allocated)" if m["device"] == "cuda" else \
        "RSS before 1st step / peak RSS [MiB] (measuring process)"
    for mode in MODES:
        lines += [f"## {MODE_TITLES[mode]}", "",
                  f"| trainer | precision | s / step | samples / s | {'data wait [s] | ' if mode == 'real' else ''}"
                  f"GFLOP / step | TFLOP/s | % peak | {memory} |",
                  "|---|---|---|---|" + ("---|" if mode == "real" else "") + "---|---|---|---|"]
        for run in results["runs"]:
            name = SHORT.get(run["trainer"], run["trainer"])
            if "error" in run:
                lines.append(f"| {name} | {run['precision']} | failed: {run['error']} |")
                continue
            r = run[mode]
            precision = run["precision"] + (" (external autocast)" if run["external_autocast"] else "")
            if m["device"] == "cuda" and not hasattr_autocast(run["trainer"]):
                precision = "fp16 AMP (nnU-Net's own)"
            mem = fmt(r.get("peak_memory_mb"), ".0f") if m["device"] == "cuda" else \
                f"{fmt(run['rss_before_first_step_mb'], '.0f')} / {fmt(run['peak_rss_mb'], '.0f')}"
            lines.append(
                f"| {name} | {precision} | {r['median_s']:.3f} ({r['steps_timed']}) | "
                f"{run['batch_size'] / r['median_s']:.2f} | "
                + (f"{r['median_data_wait_s']:.3f} | " if mode == "real" else "")
                + f"{fmt(run.get('flops_per_step', None) and run['flops_per_step'] / 1e9, '.0f')} | "
                f"{fmt(r.get('achieved_tflops'))} | {fmt(r.get('percent_of_matmul_peak'), '.1f')} | {mem} |")
        lines.append("")
    encoders = [r for r in results["runs"] if "encoder" in r and "error" not in r]
    if encoders:
        lines += ["## ViT encoder alone (forward + backward, no decoder, loss or optimizer)", "",
                  "| precision | s | GFLOP | TFLOP/s | % peak | share of step FLOPs | share of network-only step time |",
                  "|---|---|---|---|---|---|---|"]
        for run in encoders:
            e = run["encoder"]
            lines.append(f"| {run['precision']} | {e['median_s']:.3f} ({e['steps_timed']}) | {e['flops'] / 1e9:.0f} | "
                         f"{fmt(e.get('achieved_tflops'))} | {fmt(e.get('percent_of_matmul_peak'), '.1f')} | "
                         f"{fmt(e.get('flops_share_of_step'), '.0%')} | "
                         f"{fmt(e.get('time_share_of_network_only_step'), '.0%')} |")
        lines.append("")
    def met(entry: dict | None) -> str:
        return "-" if entry is None or "met" not in entry else ("yes" if entry["met"] else "**no**")

    by_label: dict[str, dict[str, dict]] = {}
    for r in results["ratios"]:
        if r["key"] != "real_over_network":
            by_label.setdefault(r["label"], {})[r["mode"]] = r
    lines += ["## Ratios", ""]
    if by_label:
        lines += ["| ratio | network-only | real | target | met (network-only / real) |", "|---|---|---|---|---|"]
    else:
        lines.append("(none between trainers or precisions: this run has too few of them)")
    for label, entries in by_label.items():
        net, real = entries.get("network"), entries.get("real")
        target = (net or real).get("target", "-")
        lines.append(f"| {label} | {fmt(net and net['value'], '.2f')} | {fmt(real and real['value'], '.2f')} | "
                     f"{target} | {met(net)} / {met(real)} |")
    lines += ["", "| real step / network-only step | value | target | met |", "|---|---|---|---|"]
    for r in results["ratios"]:
        if r["key"] == "real_over_network":
            lines.append(f"| {r['label'].split(', ', 1)[1]} | {r['value']:.2f} | {r['target']} | {met(r)} |")
    lines += ["", "Targets: " + "; ".join(f"`{k}` {op} {t}: {why}" for k, (op, t, why) in TARGETS.items()) + ".", "",
              "## Notes", ""]
    notes = [
        "Every (trainer, precision) runs in its own subprocess; the trainer is built like `nnUNetv2_train` builds it "
        "(plans from the preprocessed folder with the batch size overridden, fold `all` so no split file is written), "
        "then `initialize()`, `get_dataloaders()`, `on_train_epoch_start()` (our trainers step the LR per iteration "
        "inside `train_step`).",
        "network-only: nnU-Net's data-augmentation workers are paused, so they take no CPU from the step. real: the "
        "loader's prefetched batches are discarded first and the workers resumed, so the timed steps see the "
        "steady-state pipeline; the time includes `next(dataloader_train)` (its median is the data-wait column).",
    ]
    if m["device"] == "cpu":
        notes += [
            "nnU-Net's CNN and Primus-S have no CPU mixed precision: their fp32 rows are their own `train_step`; their "
            "bf16 rows wrap that whole `train_step` (forward, loss, backward, optimizer step) in an EXTERNAL "
            "`torch.autocast('cpu', dtype=torch.bfloat16)`, which nnU-Net itself never does. Our trainers autocast "
            "forward and loss only (`trainer.mixed_precision`).",
            "Memory on CPU: resident set size of the measuring process (VmRSS before the first step, VmHWM peak over "
            "both phases, AdamW state included from the first step on); the data-augmentation worker processes "
            "are not included.",
        ]
    else:
        notes += ["nnU-Net's CNN and Primus-S run their own `train_step`, which autocasts to fp16 with a GradScaler "
                  "on CUDA; they appear in the mixed-precision rows as fp16 AMP (their % peak uses the bf16 torch.mm "
                  "rate) and have no fp32 row."]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in results["runs"] if "error" not in r]
    trainers = [t for t in dict.fromkeys(r["trainer"] for r in runs)]
    series = [(mode, p) for mode in MODES for p in PRECISIONS if any(r["precision"] == p for r in runs)]
    if not trainers or not series:
        return
    width = 0.8 / len(series)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {("network", "fp32"): "#9ecae1", ("network", "bf16"): "#3182bd", ("real", "fp32"): "#fdae6b",
              ("real", "bf16"): "#e6550d"}
    for k, (mode, p) in enumerate(series):
        xs, secs, pct, hatches = [], [], [], []
        for i, t in enumerate(trainers):
            run = find_run(runs, t, p)
            if run is None:
                continue
            xs.append(i + (k - (len(series) - 1) / 2) * width)
            secs.append(run[mode]["median_s"])
            pct.append(run[mode].get("percent_of_matmul_peak", 0.0))
            hatches.append("//" if run["external_autocast"] else "")
        label = f"{mode}, {p}"
        bars = axes[0].bar(xs, secs, width, label=label, color=colors[(mode, p)])
        bars2 = axes[1].bar(xs, pct, width, label=label, color=colors[(mode, p)])
        for bar, bar2, hatch in zip(bars, bars2, hatches):
            bar.set_hatch(hatch)
            bar2.set_hatch(hatch)
        axes[0].bar_label(bars, fmt="%.2f", fontsize=6)
        axes[1].bar_label(bars2, fmt="%.0f", fontsize=6)
    names = [SHORT.get(t, t) for t in trainers]
    for ax in axes:
        ax.set_xticks(range(len(trainers)), names)
    axes[0].set_ylabel("seconds per train_step (median)")
    axes[0].set_title(f"batch {results['settings']['batch_size']}, {results['settings']['configuration']}")
    axes[1].set_ylabel("% of torch.mm peak (same precision)")
    axes[1].set_title("hardware efficiency (FLOP counter / step time)")
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=colors[key], label=f"{key[0]}, {key[1]}") for key in series]
    if any(r["external_autocast"] for r in runs):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="bf16 by external autocast"))
    axes[0].legend(handles=handles, fontsize=8)
    hardware = results["machine"].get("gpu") or results["machine"].get("cpu")
    fig.suptitle(f"{hardware}, torch {results['machine']['torch']}, {results['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
