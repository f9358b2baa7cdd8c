"""`nnunet_mae demo`: the whole idea in one command, with no data and no set-up.

Writes a small synthetic 3D dataset with few labelled cases and a pool of unlabeled images, then drives
nnU-Net's own command line in subprocesses: plan and preprocess -> `nnunet_mae add_unlabeled` (the pool,
preprocessed with the dataset's plans) -> MAE pre-training (fold all: labelled + unlabeled images) ->
fine-tuning from the pre-trained encoder and training from scratch at the same budget (fold 0, the few
labelled cases) -> prediction of the test images -> evaluation against the test labels. Prints a Dice table,
writes `demo_summary.png` and `commands.sh` (the commands it ran, to repeat on your own data).

The small, short-running trainer variants it uses (`*_demo`) are written into `<out>/trainers/` and
found by nnU-Net through `nnUNet_extTrainer`, the way you would add your own variants.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_mae.cli.demo_report import _minutes, format_table, gain_line, read_dice, write_summary_png
from nnunet_mae.cli.demo_trainers import (BUDGETS, FINETUNE, PRETRAIN, SCRATCH, TRAINER_MODULE, Budget,
                                         write_trainer_module)
from nnunet_mae.transfer.locate import pretraining_results_folder

DATASET_ID = 990
DATASET_NAME = "Synthetic"
DATASET = f"Dataset{DATASET_ID:03d}_{DATASET_NAME}"
CONFIGURATION = "3d_fullres"
LOG_TAIL_LINES = 40


# ----------------------------------------------------------------------------------------------------------------------
# running the stages


class StageFailed(RuntimeError):
    pass


@dataclass
class Demo:
    out: Path
    env: dict
    num_stages: int
    stage: int = 0
    start: float = field(default_factory=time.monotonic)
    times: dict[str, float] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)  # shell lines, for commands.sh and the final listing

    def begin(self, title: str) -> float:
        self.stage += 1
        print(f"[{self.stage}/{self.num_stages}] {title} ...", end="", flush=True)
        return time.monotonic()

    def end(self, title: str, started: float) -> None:
        seconds = time.monotonic() - started
        self.times[title] = seconds
        print(f" {seconds:.0f} s (total {_minutes(time.monotonic() - self.start)})", flush=True)

    def run(self, title: str, log_name: str, command: list[str], extra_env: dict | None = None) -> None:
        """Run one nnU-Net command with its output in logs/<log_name>.log; raises StageFailed with the log's tail."""
        started = self.begin(title)
        log = self.out / "logs" / f"{self.stage:02d}_{log_name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        shell_line = " ".join([f"{k}={v}" for k, v in (extra_env or {}).items()] + [shlex.join(command)])
        self.commands.append(shell_line)
        with open(log, "w") as f:
            f.write(f"$ {shell_line}\n\n")
            f.flush()
            returncode = subprocess.run(command, env=dict(self.env, **(extra_env or {})), stdout=f,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        if returncode != 0:
            print(f" FAILED after {time.monotonic() - started:.0f} s", flush=True)
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-LOG_TAIL_LINES:])
            raise StageFailed(f"Stage '{title}' failed with exit code {returncode}.\nCommand: {shell_line}\n"
                              f"Last {LOG_TAIL_LINES} lines of {log}:\n{tail}")
        self.end(title, started)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_device_name(device: str) -> str:
    import torch

    from nnunet_mae.training.precision import cpu_model_name

    return torch.cuda.get_device_name(0) if device == "cuda" else cpu_model_name()


def subprocess_environment(out: Path, trainers: Path, device: str) -> dict:
    """nnU-Net's folders inside `out`, the demo trainers first in nnUNet_extTrainer; the user's shell is untouched.

    On a CPU, nnU-Net's worker pools get one process: each worker imports torch and nnU-Net (seconds of CPU),
    more than the demo's small cases take to process. OMP_WAIT_POLICY=PASSIVE: OpenMP threads sleep instead of
    spinning at barriers; on a CPU shared with other jobs, spinning made training steps 5-10x slower."""
    from nnunet_mae.nnunet_ext import EXT_TRAINER_DIR

    ext = [str(trainers)] + [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep)
                             if p and p != str(trainers)]
    if EXT_TRAINER_DIR not in ext:
        ext.append(EXT_TRAINER_DIR)
    settings = {"nnUNet_raw": str(out / "nnUNet_raw"), "nnUNet_preprocessed": str(out / "nnUNet_preprocessed"),
                "nnUNet_results": str(out / "nnUNet_results"), "nnUNet_extTrainer": os.pathsep.join(ext),
                "nnUNet_def_n_proc": "1" if device == "cpu" else str(max(1, min(4, os.cpu_count() or 1))),
                "nnUNet_compile": "false"}  # compiling takes longer than the demo's training on a GPU
    if device == "cpu":
        settings["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    return settings


# ----------------------------------------------------------------------------------------------------------------------
# the command


def write_unlabeled_pool(out: Path, b: Budget) -> Path:
    """Images without labels (same kind of anatomy, other cases), named unlabeled_XXX_0000.nii.gz."""
    from nnunet_mae.data.synthetic import write_synthetic_dataset

    pool = write_synthetic_dataset(out / "unlabeled_source", dataset_id=DATASET_ID + 1, name="Pool",
                                   num_cases=b.num_unlabeled, shape=b.shape, difficulty=b.difficulty, seed=1,
                                   layout=b.layout)
    images = out / "unlabeled_images"
    images.mkdir(exist_ok=True)
    for f in (pool / "imagesTr").glob("case_*"):
        f.rename(images / f.name.replace("case_", "unlabeled_"))
    shutil.rmtree(out / "unlabeled_source")
    return images


def run_demo(out: Path, budget_name: str, seed: int = 0) -> int:
    from nnunet_mae.training.precision import choose_precision

    device = _device()
    settings = subprocess_environment(out, out / "trainers", device)
    demo = Demo(out=out, env=dict(os.environ, PYTHONUNBUFFERED="1", **settings), num_stages=12)
    precision = choose_precision("auto", device)  # what the trainers will choose; each logs it at its start
    hardware = torch_device_name(device)
    print(f"nnunet_mae demo (budget {budget_name!r}, seed {seed}, device {device}: {hardware}) in {out}\n"
          f"The trainers run in {precision.describe()}.\n"
          f"Each stage writes its output to {out / 'logs'} (follow one with tail -f).")
    unlabeled = write_inputs(demo, budget_name, seed)
    preds = run_nnunet_stages(demo, BUDGETS[budget_name], unlabeled, device)
    dice = {name: read_dice(folder / "summary.json") for name, folder in reversed(preds.items())}
    probe = probe_encoders(demo, device)
    png = summary_picture(demo, preds, dice)
    script = write_commands(demo, settings)
    (out / "demo_results.json").write_text(json.dumps({"budget": budget_name, "seed": seed, "device": device,
                                                       "hardware": hardware,
                                                       "precision": precision.describe(), "dice": dice,
                                                       "probe": probe, "seconds": demo.times}, indent=2))
    print("\n" + format_table(dice, demo.times))
    print("\n" + gain_line(dice, budget_name))
    print("\n" + probe_line(probe))
    print_where_everything_is(demo, png, script)
    return 0


def write_inputs(demo: Demo, budget_name: str, seed: int) -> Path:
    """Stage 1: the labelled dataset, the pool of unlabeled images and the demo's trainer variants."""
    from nnunet_mae.data.synthetic import write_synthetic_dataset

    b, out = BUDGETS[budget_name], demo.out
    started = demo.begin(f"write a synthetic dataset: {b.num_cases} labelled training cases, {b.num_unlabeled} "
                         f"images without labels, {b.num_test_cases} test cases, shape {b.shape}")
    write_synthetic_dataset(out / "nnUNet_raw", dataset_id=DATASET_ID, name=DATASET_NAME, num_cases=b.num_cases,
                            shape=b.shape, num_test_cases=b.num_test_cases, difficulty=b.difficulty, seed=0,
                            layout=b.layout)
    unlabeled = write_unlabeled_pool(out, b)
    write_trainer_module(out / "trainers", budget_name, seed)
    for sub in ("nnUNet_preprocessed", "nnUNet_results"):
        (out / sub).mkdir(exist_ok=True)
    demo.end("dataset", started)
    return unlabeled


def run_nnunet_stages(demo: Demo, b: Budget, unlabeled: Path, device: str) -> dict[str, Path]:
    """Stages 2-10, nnU-Net's and this package's commands; returns the prediction folder of each row."""
    raw = demo.out / "nnUNet_raw" / DATASET
    preds = {"MAE pre-trained": demo.out / "predictions" / "pretrained",
             "from scratch": demo.out / "predictions" / "scratch"}
    n_proc = demo.env["nnUNet_def_n_proc"]
    train_env = {} if device == "cuda" else {"nnUNet_n_proc_DA": "0"}  # augmentation in the main process on a CPU
    # -npp 0 -nps 0: nnU-Net predicts sequentially, without worker processes (faster for a few small cases)
    predict_workers = ["-npp", "0", "-nps", "0"] if device == "cpu" else ["-npp", "2", "-nps", "2"]
    train = ["nnUNetv2_train", str(DATASET_ID), CONFIGURATION]
    demo.run("plan and preprocess", "plan_and_preprocess",
             ["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", CONFIGURATION, "-np", n_proc,
              "-npfp", n_proc, "--verify_dataset_integrity"])
    demo.run(f"add the {b.num_unlabeled} unlabeled images to the pre-training (preprocessed with the dataset's plans)",
             "add_unlabeled", ["nnunet_mae", "add_unlabeled", "-d", str(DATASET_ID), "-i", str(unlabeled), "-c",
                               CONFIGURATION, "-np", n_proc])
    demo.run(f"MAE pre-training on labelled + unlabeled images, fold all ({b.pretrain_epochs} epochs x "
             f"{b.pretrain_iterations} iterations)",
             "pretrain", train + ["all", "-tr", PRETRAIN, "-device", device], train_env)
    demo.run(f"fine-tuning from the pre-trained encoder, fold 0 ({b.finetune_epochs} x {b.finetune_iterations})",
             "finetune", train + ["0", "-tr", FINETUNE, "-device", device], train_env)
    demo.run(f"training from scratch, fold 0 ({b.finetune_epochs} x {b.finetune_iterations})",
             "scratch", train + ["0", "-tr", SCRATCH, "-device", device], train_env)
    for (name, folder), trainer in zip(preds.items(), (FINETUNE, SCRATCH)):
        demo.run(f"predict the test images: {name}", f"predict_{folder.name}",
                 ["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(folder), "-d", str(DATASET_ID),
                  "-c", CONFIGURATION, "-tr", trainer, "-f", "0", "-device", device, *predict_workers,
                  "--disable_progress_bar"])
    for name, folder in preds.items():
        demo.run(f"evaluate against the test labels: {name}", f"evaluate_{folder.name}",
                 ["nnUNetv2_evaluate_simple", str(raw / "labelsTs"), str(folder), "-l", "1", "2"])
    return preds


PROBE_SEEDS = 3


def probe_encoders(demo: Demo, device: str) -> dict:
    """Stage 11: `nnunet_mae probe` of the pre-trained encoder and of a random one of the same shape (3 seeds):
    what pre-training learned, read by a linear head on the frozen features (documentation/reference.md).
    Cross-validated over nnU-Net's five folds: with 8 labelled cases one fold scores 1-2 cases, too few to tell
    encoders apart (benchmarks.md, "The demo's probe"); over all five every labelled case scores once."""
    from nnunet_mae.training.splits import NNUNET_FOLDS  # imports nnU-Net: not at the command's start

    checkpoint = pretraining_results_folder(demo.out / "nnUNet_results", DATASET, PRETRAIN, "nnUNetPlans",
                                            CONFIGURATION) / "checkpoint_final.pth"
    table = demo.out / "probe.json"
    demo.run(f"probe the pre-trained and a random encoder ({PROBE_SEEDS} seeds)", "probe",
             ["nnunet_mae", "probe", "-d", str(DATASET_ID), "-c", CONFIGURATION, "-i", str(checkpoint), "--random",
              "--seeds", str(PROBE_SEEDS), "-f", *map(str, range(NNUNET_FOLDS)), "--device", device, "--json",
              str(table)])
    pretrained, random = json.loads(table.read_text())
    return {name: {"mean": row["mean"], "spread": row["spread"], "seeds": row["seed_means"]}
            for name, row in (("random", random), ("pretrained", pretrained))}


def probe_line(probe: dict) -> str:
    from nnunet_mae.training.splits import NNUNET_FOLDS

    gain = probe["pretrained"]["mean"] - probe["random"]["mean"]
    spread = max(probe["pretrained"]["spread"], probe["random"]["spread"])
    verdict = ("above the probe's spread: the encoder learned something a linear read-out can see" if gain > spread
               else "below it by more than the probe's spread: at this budget pre-training made the encoder's "
                    "features worse for a linear read-out" if gain < -spread
               else "within the probe's spread: at this budget the probe cannot tell the pre-trained encoder from a "
                    "random one")
    return (f"Probe (linear head on the frozen encoder, cross-validated over nnU-Net's {NNUNET_FOLDS} folds, "
            f"{PROBE_SEEDS} seeds): "
            f"pre-trained "
            f"{probe['pretrained']['mean']:.3f} (spread {probe['pretrained']['spread']:.3f}), random init "
            f"{probe['random']['mean']:.3f} (spread {probe['random']['spread']:.3f}); difference {gain:+.3f}, "
            f"{verdict}.")


def summary_picture(demo: Demo, preds: dict[str, Path], dice: dict) -> Path:
    """Stage 12: the last reconstruction and the first test case's segmentations in one PNG."""
    raw = demo.out / "nnUNet_raw" / DATASET
    started = demo.begin("write demo_summary.png")
    pretraining = pretraining_results_folder(demo.out / "nnUNet_results", DATASET, PRETRAIN, "nnUNetPlans",
                                             CONFIGURATION)
    reconstructions = sorted((pretraining / "reconstructions").glob("epoch_*.png"))
    test_case = sorted((raw / "labelsTs").glob("*.nii.gz"))[0]
    png = write_summary_png(demo.out / "demo_summary.png", reconstructions[-1] if reconstructions else None,
                            raw / "imagesTs" / test_case.name.replace(".nii.gz", "_0000.nii.gz"), test_case,
                            {name: folder / test_case.name for name, folder in preds.items()}, dice)
    demo.end("summary picture", started)
    return png


def write_commands(demo: Demo, settings: dict) -> Path:
    script = demo.out / "commands.sh"
    script.write_text("#!/usr/bin/env bash\n"
                      "# The nnU-Net commands `nnunet_mae demo` ran. On your own data: set the three folders,\n"
                      "# drop the demo's trainer folder from nnUNet_extTrainer and use the full-size trainers\n"
                      "# nnUNetTrainerMAEPretrain, nnUNetTrainerMAEFinetune and nnUNetTrainerViT.\nset -e\n"
                      + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in settings.items())
                      + "\n".join(demo.commands) + "\n")
    return script


def print_where_everything_is(demo: Demo, png: Path, script: Path) -> None:
    out = demo.out
    print(f"\nWhere everything is (in {out}):\n"
          f"  dataset       {out / 'nnUNet_raw' / DATASET}\n"
          f"  logs          {out / 'logs'}\n"
          f"  results       {out / 'nnUNet_results' / DATASET}  (checkpoints, progress.png, reconstructions/, "
          f"validation/)\n"
          f"  predictions   {out / 'predictions'}  (summary.json of each: per-case metrics)\n"
          f"  picture       {png}\n"
          f"  trainers      {out / 'trainers' / TRAINER_MODULE}  (the small *_demo variants)\n"
          f"  commands      {script}\n"
          f"\nThe nnU-Net commands run (with the environment in {script.name}):\n"
          + "\n".join(f"  {c}" for c in demo.commands)
          + f"\nOn your own data use the full-size trainers: {PRETRAIN.removesuffix('_demo')}, "
            f"{FINETUNE.removesuffix('_demo')} and {SCRATCH.removesuffix('_demo')}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nnunet_mae demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="an empty or new folder for everything the demo writes (default: a new temporary folder, "
                             "kept afterwards)")
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed (weights, masks, augmentation); the dataset is the same for every seed")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="default",
                        help="default: under 10 minutes on 2 CPU cores; long: 3x the pre-training, 2x the "
                             "fine-tuning (about 15 minutes); tiny: a quick check that every stage runs (about 3 "
                             "minutes; the Dice means nothing)")
    args = parser.parse_args(argv)
    if args.out is None:
        out = Path(tempfile.mkdtemp(prefix="nnunet_mae_demo_"))
    else:
        out = args.out.expanduser().resolve()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            print(f"--out {out} is not an empty folder. The demo writes a complete nnU-Net set-up there; pass a new "
                  f"or empty folder, or leave out --out for a temporary one.", file=sys.stderr)
            return 2
        out.mkdir(parents=True, exist_ok=True)
    try:
        return run_demo(out, args.budget, args.seed)
    except StageFailed as e:
        print(f"\n{e}", file=sys.stderr)
        return 1
