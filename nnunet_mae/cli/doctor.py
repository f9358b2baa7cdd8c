"""`nnunet_mae doctor`: checks the installation and nnU-Net's set-up; prints the fix for each problem."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path


def requirement(name: str) -> str:
    """The installed package's own requirement on `name` (setup.py owns the ranges), e.g. 'torch>=2.5'."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        specs = [r.split(";")[0].strip() for r in requires("nnunet_mae") or []]
    except PackageNotFoundError:
        specs = []
    return next((r for r in specs if re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() == name.lower()), name)


def fix_torch() -> str:
    return (f'pip install --force-reinstall "{requirement("torch")}" torchvision  (a matching pair from one index: '
            f'the torch build for your GPU driver or CPU, and the torchvision released with it)')


def fix_nnunet() -> str:
    return f'pip install "{requirement("nnunetv2")}"'


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_imports() -> list[Check]:
    checks = []
    for module, fix in (("torch", fix_torch()), ("torchvision", fix_torch()),
                        ("timm", f'{fix_torch()}, then pip install "{requirement("timm")}"'),
                        ("nnunetv2", fix_nnunet())):
        try:
            imported = importlib.import_module(module)
            checks.append(Check(f"import {module}", True, getattr(imported, "__version__", "")))
        except Exception as e:  # a broken torch/torchvision pair raises RuntimeError/OSError, not only ImportError
            checks.append(Check(f"import {module}", False, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}", fix))
    return checks


def check_device() -> list[Check]:
    try:
        import torch
    except Exception:
        return []
    from nnunet_mae.training.precision import choose_precision, cpu_info, measure_bf16_speedup

    checks = []
    if torch.cuda.is_available():
        checks.append(Check("device", True, f"CUDA: {torch.cuda.get_device_name(0)} (use -device cuda); trainers "
                                            f"choose {choose_precision('auto', 'cuda').describe()}"))
    else:
        checks.append(Check("device", True, f"no GPU; CPU with {torch.get_num_threads()} threads (use -device cpu)"))
    info = cpu_info()
    choice = choose_precision("auto", "cpu")
    load, cores = machine_load()
    ratios = measure_bf16_speedup(seconds=1.0)
    measured = ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items())
    # a CPU that claims native bf16 but runs it slower than fp32 overall (geometric mean of the ratios; e.g. torch
    # 2.5's bf16 Conv3d on AVX512-BF16 measured 0.78x) is worth a warning: force fp32 with the _fp32 variants. On a
    # busy machine a 1-s measurement is not evidence against the trainers' choice (other processes distorted it
    # several-fold): then the choice stands and doctor says how to check.
    slow = choice.precision == "bf16" and math.prod(ratios.values()) ** (1 / len(ratios)) < 1.0
    busy = load >= max(cores - 0.5, 0.5)
    note = ""
    if slow and busy:
        note = (f"; measured while the machine was busy (load average {load:.1f} on {cores} core(s)), which makes "
                f"this quick measurement unreliable: the trainers' choice stands; run `nnunet_mae doctor` again on an "
                f"idle machine to check it")
    checks.append(Check("CPU precision", not (slow and not busy),
                        f"{info.model}; bf16: {info.bf16_support}; trainers on the CPU choose {choice.describe()}; "
                        f"measured bf16 speed-up over fp32 here (1 s): {measured}{note}",
                        "bf16 measured slower than fp32 on this CPU: use the _fp32 trainer variants "
                        "(e.g. -tr nnUNetTrainerViT_fp32) or set mixed_precision = 'fp32' in a subclass"))
    return checks


def machine_load() -> tuple[float, int]:
    """(1-minute load average, CPU count) before the measurement; (0, n) where the OS has no load average."""
    cores = os.cpu_count() or 1
    try:
        return os.getloadavg()[0], cores
    except (AttributeError, OSError):
        return 0.0, cores


def check_environment() -> list[Check]:
    checks = []
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        value = os.environ.get(var)
        if not value:
            checks.append(Check(var, False, "not set", f"export {var}=/path/to/{var}  (see nnU-Net's "
                                                        f"documentation/setting_up_paths.md)"))
        elif not os.path.isdir(value):
            checks.append(Check(var, False, f"{value} is not a folder", f"mkdir -p {value}"))
        else:
            checks.append(Check(var, True, value))
    return checks


def check_trainers() -> list[Check]:
    try:
        from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR
        from nnunet_mae.training.trainers import __all__ as names
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    except Exception as e:
        return [Check("trainer classes", False, f"{type(e).__name__}: {e}", fix_torch())]
    paths = os.environ.get("nnUNet_extTrainer", "").split(os.pathsep)
    registered = EXT_TRAINER_DIR in paths
    checks = [Check("nnUNet_extTrainer", registered,
                    "includes the nnunet_mae trainer folder" if registered else "does not include " + EXT_TRAINER_DIR,
                    "" if registered else f"reinstall with `pip install -e .` (installs the start-up hook), or "
                                          f"export nnUNet_extTrainer={EXT_TRAINER_DIR}")]
    missing = []
    for name in names:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                recursive_find_trainer_class_by_name(name)
        except Exception:
            missing.append(name)
    checks.append(Check("nnU-Net finds the trainers", not missing,
                        f"{len(names) - len(missing)} of {len(names)} found by name"
                        + (f"; missing: {', '.join(missing)}" if missing else ""),
                        "" if not missing else "fix nnUNet_extTrainer as above"))
    return checks


def check_startup_hook() -> list[Check]:
    """The installed nnunet_mae_ext.pth: present in site-packages, and effective in a new interpreter."""
    import site
    import subprocess
    import sys

    from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR, PTH_NAME

    folders = [*site.getsitepackages(), site.getusersitepackages()]
    found = [os.path.join(f, PTH_NAME) for f in folders if os.path.isfile(os.path.join(f, PTH_NAME))]
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}
    probe = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('nnUNet_extTrainer', ''))"],
                           env=env, capture_output=True, text=True, timeout=60)
    works = EXT_TRAINER_DIR in probe.stdout.strip().split(os.pathsep)
    detail = (f"{found[0] if found else PTH_NAME + ' not in ' + ', '.join(folders)}; a new interpreter "
              + ("registers the trainer folder" if works else "does not register the trainer folder"))
    return [Check("start-up hook", bool(found) and works, detail,
                  "" if found and works else "reinstall: pip install nnunet_mae (or pip install -e . in a checkout)")]


def run_checks() -> list[Check]:
    return check_imports() + check_device() + check_environment() + check_startup_hook() + check_trainers()


def check_results(folder: Path) -> list[Check]:
    """Every .pth under `folder` (a results folder someone gave you), read weights-only. nnU-Net's predictor reads
    checkpoint_final.pth with `torch.load(weights_only=False)` before any trainer of this package runs: a planted
    pickle there would run code. Nothing is unpickled here."""
    from nnunet_mae.transfer.checkpoint_io import UnsafeCheckpointError, safe_torch_load

    if not folder.is_dir():
        return [Check("results folder", False, f"{folder} is not a folder",
                      "give the folder nnUNetv2_predict would read (a trainer's results)")]
    files = sorted(folder.rglob("*.pth"))
    checks = []
    for path in files:
        try:
            safe_torch_load(path)
            checks.append(Check(f"{path.relative_to(folder)}", True, "weights only (tensors, plain values)"))
        except UnsafeCheckpointError as e:
            checks.append(Check(f"{path.relative_to(folder)}", False, str(e).split(" If you trust")[0],
                                "do not run nnUNetv2_predict or nnUNetv2_train --c/--val on this folder unless you "
                                "trust whoever made the file: nnU-Net unpickles it"))
        except Exception as e:  # truncated, not a torch file
            checks.append(Check(f"{path.relative_to(folder)}", False, f"unreadable ({type(e).__name__}: "
                                                                      f"{str(e).splitlines()[0][:200]})",
                                "copy the folder again"))
    if not files:
        checks.append(Check("results folder", False, f"no .pth file under {folder}",
                            "give a trainer's results folder (it holds fold_*/checkpoint_final.pth)"))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nnunet_mae doctor", description=__doc__)
    parser.add_argument("--check-results", type=Path, metavar="DIR",
                        help="only check that every checkpoint under DIR (a results folder you received) loads "
                             "weights-only, i.e. nnU-Net can read it without running code from it")
    args = parser.parse_args(argv)
    checks = check_results(args.check_results) if args.check_results else run_checks()
    for c in checks:
        print(f"[{'ok' if c.ok else 'PROBLEM'}] {c.name}: {c.detail}")
        if not c.ok:
            print(f"      fix: {c.fix}")
    problems = [c for c in checks if not c.ok]
    print("\nAll checks passed." if not problems else f"\n{len(problems)} problem(s) found; fixes above.")
    return 0 if not problems else 1
