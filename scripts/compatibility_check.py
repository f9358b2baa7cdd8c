"""Compatibility check: the built wheel in fresh virtual environments that already hold a given torch.

Not part of CI (each environment downloads GBs). For each environment:
1. `python -m venv`, then `pip install torch==X torchvision==Y` (the user's existing torch);
2. `pip install <wheel>[test]` (the built wheel, not editable) and check that torch was not touched;
3. in a clean shell (`env -i`): nnU-Net finds the trainers, `nnunet_mae doctor` reports the start-up hook and
   the trainers ok, `nnunet_mae --version`;
4. the fast tests (`pytest -m "not slow"`, from a copy of tests/ so that the installed package is imported);
5. a CLI smoke chain on a synthetic dataset: plan and preprocess -> MAE pre-training (_smoke) -> fine-tuning
   (_smoke) -> nnUNetv2_predict;
6. `pip uninstall nnunet_mae` leaves no nnunet_mae file in site-packages.
Results (versions, pass/fail, seconds per step) go to <work>/results.json and a markdown table on stdout.

    python scripts/compatibility_check.py --work /tmp/compat                 # all environments below
    python scripts/compatibility_check.py --work /tmp/compat --envs oldest   # one of them
Resumable: an environment whose results are in results.json is skipped (delete its entry to redo it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENVIRONMENTS = {  # name: what the user already has
    "oldest": ["torch==2.5.1", "torchvision==0.20.1"],  # torch >= 2.5: torch.serialization.safe_globals
    "local-2.14": ["torch==2.14.1", "torchvision==0.29.1"],  # from this machine's local files (Python 3.11)
    "newest": ["torch==2.15.0", "torchvision==0.29.2"],
}
SMOKE = r'''
set -euo pipefail
export nnUNet_raw="$W/raw" nnUNet_preprocessed="$W/pre" nnUNet_results="$W/res" nnUNet_def_n_proc=1
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed" "$nnUNet_results"
python -c "from nnunet_mae.data import write_synthetic_dataset as w; from pathlib import Path; w(Path('$W/raw'), dataset_id=991, num_cases=6, shape=(24, 32, 24), num_test_cases=1, seed=1)"
nnUNetv2_plan_and_preprocess -d 991 -c 3d_fullres -np 1
nnUNet_n_proc_DA=0 nnUNetv2_train 991 3d_fullres all -tr nnUNetTrainerMAEPretrain_smoke -device cpu
nnUNet_n_proc_DA=0 nnUNetv2_train 991 3d_fullres 0 -tr nnUNetTrainerMAEFinetune_smoke -device cpu
nnUNetv2_predict -i "$W/raw/Dataset991_Synthetic/imagesTs" -o "$W/pred" -d 991 -c 3d_fullres -tr nnUNetTrainerMAEFinetune_smoke -f 0 -device cpu -npp 0 -nps 0 --disable_progress_bar
ls "$W/pred"/*.nii.gz
'''
CLEAN_SHELL_CHECK = ("from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f; "
                     "print(f('nnUNetTrainerMAEFinetune').__module__)")


def sh(command, log, env=None, cwd=None, timeout=3600) -> tuple[bool, float]:
    started = time.monotonic()
    with open(log, "a") as f:
        f.write(f"\n$ {command if isinstance(command, str) else ' '.join(map(str, command))}\n")
        f.flush()
        result = subprocess.run(command, shell=isinstance(command, str), stdout=f, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd, timeout=timeout, executable="/bin/bash" if isinstance(command, str)
                                else None)
    return result.returncode == 0, round(time.monotonic() - started, 1)


def torch_version(python: Path) -> str:
    out = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    return out.stdout.strip() or "none"


def check_environment(name: str, torch_specs: list[str], wheel: Path, work: Path) -> dict:
    folder, log = work / name, work / f"{name}.log"
    shutil.rmtree(folder, ignore_errors=True)
    log.write_text("")
    python, pip = folder / "venv" / "bin" / "python", [folder / "venv" / "bin" / "python", "-m", "pip"]
    result = {"environment": name, "asked": " ".join(torch_specs), "python": platform.python_version(), "steps": {}}
    steps = result["steps"]
    subprocess.run([sys.executable, "-m", "venv", folder / "venv"], check=True)
    steps["install torch"] = sh([*pip, "install", "-q", *torch_specs], log)
    before = torch_version(python)
    steps["install wheel"] = sh([*pip, "install", "-q", f"{wheel}[test]"], log)
    result["torch"], result["torch_kept"] = torch_version(python), torch_version(python) == before
    versions = subprocess.run([python, "-c", "import importlib.metadata as m; print(' '.join(f'{p}=={m.version(p)}' "
                               "for p in ('nnunetv2', 'dynamic_network_architectures', 'timm', 'batchgeneratorsv2', "
                               "'numpy', 'torchvision')))"], capture_output=True, text=True).stdout.strip()
    result["versions"] = versions
    bin_path = f"{folder / 'venv' / 'bin'}:/usr/bin:/bin"
    clean = f"env -i HOME={folder} PATH={bin_path} "
    steps["clean shell: trainer lookup"] = sh(f"{clean} python -c \"{CLEAN_SHELL_CHECK}\"", log)
    steps["clean shell: doctor hook + trainers"] = sh(
        f"{clean} nnunet_mae doctor | grep -q '\\[ok\\] start-up hook' && "
        f"{clean} nnunet_mae doctor | grep -q '\\[ok\\] nnU-Net finds the trainers' && {clean} nnunet_mae --version",
        log)
    tests = folder / "tests_copy"
    shutil.copytree(REPO / "tests", tests / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tests / "pyproject.toml")
    steps["fast tests"] = sh([python, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"], log,
                             cwd=tests, env=dict(os.environ, PATH=bin_path))
    steps["CLI smoke chain"] = sh(SMOKE, log, env=dict(os.environ, W=str(folder / "smoke"), PATH=bin_path))
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True).stdout.strip()
    ok, seconds = sh([*pip, "uninstall", "-y", "-q", "nnunet_mae"], log)
    left = sorted(p.name for p in Path(site).glob("nnunet_mae*"))
    steps["uninstall leaves nothing"] = (ok and not left, seconds)
    result["left_after_uninstall"] = left
    result["passed"] = result["torch_kept"] and all(ok for ok, _ in steps.values())
    return result


def markdown(results: list[dict]) -> str:
    lines = ["| environment | torch (kept?) | other versions | " + " | ".join(results[0]["steps"]) + " |",
             "|---" * (3 + len(results[0]["steps"])) + "|"]
    for r in results:
        cells = [f"{'pass' if ok else 'FAIL'} ({seconds:.0f} s)" for ok, seconds in r["steps"].values()]
        lines.append(f"| {r['environment']} | {r['torch']} ({'yes' if r['torch_kept'] else 'NO'}) | {r['versions']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for the environments (several GB each)")
    parser.add_argument("--envs", default=",".join(ENVIRONMENTS), help=f"from {', '.join(ENVIRONMENTS)}")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    dist = args.work / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, REPO], check=True,
                   stdout=subprocess.DEVNULL)
    wheel = next(dist.glob("nnunet_mae-*.whl"))
    results_file = args.work / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name in args.envs.split(","):
        if name in results:
            print(f"{name}: done before (in {results_file})")
            continue
        print(f"{name}: {' '.join(ENVIRONMENTS[name])} ...", flush=True)
        results[name] = check_environment(name, ENVIRONMENTS[name], wheel, args.work)
        results[name]["date"] = time.strftime("%Y-%m-%d")
        results_file.write_text(json.dumps(results, indent=2))
        print(f"  {'passed' if results[name]['passed'] else 'FAILED'} (log: {args.work / (name + '.log')})", flush=True)
    print(markdown(list(results.values())))
    return 0 if all(r["passed"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
