"""What the benchmark scripts share: the dataset they run on and its workspace (nnU-Net's folders, the raw data
linked in, planned and preprocessed once), the short names of the trainers, finding a trainer class by name as
nnU-Net does, running a logged command, and the record of the machine every result names."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


# ../shared beside the project
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "Dataset004_Hippocampus"
DATASET = "Dataset004_Hippocampus"
CONFIGURATION = "3d_fullres"
SHORT = {"nnUNetTrainer": "CNN", "nnUNet_Primus_S_Trainer": "Primus-S", "nnUNetTrainerViT": "ViT-S",
         "nnUNetTrainerMAEPretrain": "MAE", "nnUNetTrainerGMIMPretrain": "GMIM",
         "nnUNetTrainerViT_patchdec": "ViT-S patch decoder"}


def split_choices(parser, value: str, choices, what: str) -> list[str]:
    """A comma-separated option as a list; the parser exits with the known choices if one is not among them."""
    chosen = value.split(",")
    unknown = sorted(set(chosen) - set(choices))
    if unknown:
        parser.error(f"unknown {what}(s) {unknown}; choose from {choices}")
    return chosen


def trainer_folder(results: str | Path, trainer: str, fold: int | str) -> Path:
    """nnU-Net's output folder of `trainer` on the benchmark dataset and configuration (nnUNetPlans)."""
    return Path(results, DATASET, f"{trainer}__nnUNetPlans__{CONFIGURATION}", f"fold_{fold}")


def find_trainer_class(name: str):
    import nnunet_mae.training.trainers as ours

    if hasattr(ours, name):
        return getattr(ours, name)
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    return recursive_find_trainer_class_by_name(name)


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


def run_logged(command: list[str], env: dict, log: Path, *, append: bool = False, echo: bool = False) -> float:
    """Run a command line with its output in `log` (appended to, for stages that resume); exit the benchmark with
    the log's name when it fails. Returns the wall-clock seconds."""
    start = time.time()
    if echo:
        print(f"$ {' '.join(command)}  (log: {log})", flush=True)
    with open(log, "a" if append else "w") as f:
        result = subprocess.run(command, env=env, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed; see {log}")
    return time.time() - start


def workspace_environment(work: Path, results: Path | None = None, **extra: str) -> dict:
    """nnU-Net's three folders inside `work` (results elsewhere if given), the benchmarks' trainer folder first in
    nnUNet_extTrainer."""
    trainers = str(Path(__file__).resolve().parent / "trainers")
    return dict(os.environ, nnUNet_raw=str(work / "raw"), nnUNet_preprocessed=str(work / "preprocessed"),
                nnUNet_results=str(results or work / "results"),
                nnUNet_extTrainer=os.pathsep.join(p for p in [trainers, os.environ.get("nnUNet_extTrainer")] if p),
                **extra)


def prepare_workspace(data: Path, work: Path, env: dict) -> Path:
    """Link the raw dataset into work/raw and plan and preprocess it once (log in work/logs/plan.log); returns the
    preprocessed configuration folder. Exits with what to do when `data` is not the dataset or preprocessing is
    incomplete."""
    for sub in ("raw", "preprocessed", "results", "logs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    if not (data / "dataset.json").is_file():
        sys.exit(f"{data} is not the Hippocampus raw dataset (no dataset.json): give its folder with --data.")
    link = work / "raw" / DATASET
    if not link.exists():
        link.symlink_to(data.resolve())
    base = work / "preprocessed" / DATASET
    folder = base / f"nnUNetPlans_{CONFIGURATION}"
    if not folder.is_dir():
        print(f"Preprocessing {DATASET} for {CONFIGURATION} into {base} ...", flush=True)
        run_logged(["nnUNetv2_plan_and_preprocess", "-d", "4", "-c", CONFIGURATION, "-np", "2"], env,
                   work / "logs" / "plan.log")
    expected = json.loads((base / "dataset.json").read_text()).get("numTraining")
    cases = {p.name.split(".")[0] for p in folder.iterdir() if p.suffix in (".b2nd", ".npz", ".npy", ".pkl")}
    cases = {c[:-4] if c.endswith("_seg") else c for c in cases}
    if expected and len(cases) < expected:
        sys.exit(f"{folder} holds {len(cases)} of {expected} cases: preprocessing is incomplete or still running.")
    return folder


def interleaved_timings(steps: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each callable: one warm-up call each, then `repeats` rounds running the candidates in turn, so
    that their ratios are robust to the drift of a shared or virtual machine."""
    for fn in steps.values():
        fn()
    timings: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - start)
    return timings
