"""What the benchmark scripts share: the dataset they run on, the short names of the trainers, finding a
trainer class by name as nnU-Net does, and the record of the machine every result names."""

from __future__ import annotations

import multiprocessing
import platform
import subprocess
import sys
import time
from pathlib import Path


DEFAULT_DATA = Path(__file__).resolve().parent.parent / "shared" / "data" / "Dataset004_Hippocampus"
DATASET = "Dataset004_Hippocampus"
CONFIGURATION = "3d_fullres"
SHORT = {"nnUNetTrainer": "CNN", "nnUNet_Primus_S_Trainer": "Primus-S", "nnUNetTrainerViT": "ViT-S",
         "nnUNetTrainerMAEPretrain": "MAE", "nnUNetTrainerGMIMPretrain": "GMIM",
         "nnUNetTrainerViT_patchdec": "ViT-S patch decoder"}


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
