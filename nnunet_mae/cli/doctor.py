"""`nnunet_mae doctor`: checks the installation and nnU-Net's set-up; prints the fix for each problem."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
from dataclasses import dataclass

FIX_TORCH = ('pip install "torch==2.15.0" "torchvision==0.29.2"  (a matching pair; on CPU-only machines the '
             'registry build of both runs fine)')


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_imports() -> list[Check]:
    checks = []
    for module, fix in (("torch", FIX_TORCH), ("torchvision", FIX_TORCH), ("timm", FIX_TORCH + ", then pip install timm"),
                        ("nnunetv2", 'pip install "nnunetv2>=2.8.1,<2.9"')):
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
    if torch.cuda.is_available():
        detail = f"CUDA: {torch.cuda.get_device_name(0)} (use -device cuda)"
    else:
        detail = f"no GPU; CPU with {torch.get_num_threads()} threads (use -device cpu; bf16 autocast is on by default)"
    return [Check("device", True, detail)]


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
        return [Check("trainer classes", False, f"{type(e).__name__}: {e}", FIX_TORCH)]
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


def run_checks() -> list[Check]:
    return check_imports() + check_device() + check_environment() + check_trainers()


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="nnunet_mae doctor", description=__doc__).parse_args(argv)
    checks = run_checks()
    for c in checks:
        print(f"[{'ok' if c.ok else 'PROBLEM'}] {c.name}: {c.detail}")
        if not c.ok:
            print(f"      fix: {c.fix}")
    problems = [c for c in checks if not c.ok]
    print("\nAll checks passed." if not problems else f"\n{len(problems)} problem(s) found; fixes above.")
    return 0 if not problems else 1
