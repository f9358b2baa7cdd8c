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
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CONFIGURATION, DATASET, DEFAULT_DATA, machine_info, prepare_workspace, workspace_environment
from step_speed_measure import matmul_peak, run_single
from step_speed_report import PRECISIONS, TARGETS, TRAINERS, add_efficiency, derived_ratios, plot, write_markdown

HERE = Path(__file__).resolve().parent


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


def build_parser() -> argparse.ArgumentParser:
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
    return parser


def chosen_precisions(parser: argparse.ArgumentParser, args) -> list[str]:
    """--precisions as a list; 'auto': fp32, plus bf16 where the trainers' own rule would choose it."""
    precisions = [p for p in args.precisions.split(",") if p]
    if precisions == ["auto"]:
        from nnunet_mae.training.precision import choose_precision

        auto = choose_precision("auto", args.device)
        precisions = ["fp32"] + (["bf16"] if auto.precision == "bf16" else [])
        print(f"--precisions auto: {', '.join(precisions)} (the trainers choose {auto.describe()})", flush=True)
    if set(precisions) - set(PRECISIONS):
        parser.error(f"--precisions must be from {PRECISIONS}")
    return precisions


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.single:
        result = run_single(args)
        args.result_file.write_text(json.dumps(result, indent=2))
        return 0

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    trainers = [t for t in args.trainers.split(",") if t]
    precisions = chosen_precisions(parser, args)
    temp = Path(tempfile.mkdtemp(prefix="step_speed_"))
    logs = temp / "logs"
    logs.mkdir()
    env = workspace_environment(args.work, temp / "results", nnUNet_n_proc_DA=str(args.n_proc_da),
                                nnUNet_compile="t" if args.compile else "f")
    prepare_workspace(args.data, args.work, env)
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

    results["runs"] = run_all(args, env, trainers, precisions, logs, start)
    results["load_average_at_end"] = os.getloadavg()
    results["total_seconds"] = time.time() - start
    results["ratios"] = derived_ratios(results["runs"], args.device)
    add_efficiency(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    markdown = write_markdown(results)
    (args.out / "results.md").write_text(markdown)
    plot(results, args.out / "speed.png")
    shutil.rmtree(temp / "results", ignore_errors=True)
    print("\n" + markdown)
    print(f"Written to {args.out}; subprocess logs in {logs}")
    return 0


def run_all(args, env: dict, trainers: list[str], precisions: list[str], logs: Path, start: float) -> list[dict]:
    """Every (trainer, precision) in its own subprocess; FLOPs counted once per trainer and copied to its rows."""
    runs, flops = [], {}
    for trainer in trainers:
        for precision in precisions:
            nnunet_own = trainer in ("nnUNetTrainer", "nnUNet_Primus_S_Trainer")
            if args.device == "cuda" and nnunet_own and precision == "fp32":
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
    return runs



if __name__ == "__main__":
    sys.exit(main())
