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

DATASET_ID = 990
DATASET_NAME = "Synthetic"
DATASET = f"Dataset{DATASET_ID:03d}_{DATASET_NAME}"
CONFIGURATION = "3d_fullres"
PRETRAIN, FINETUNE, SCRATCH = "nnUNetTrainerMAEPretrain_demo", "nnUNetTrainerMAEFinetune_demo", "nnUNetTrainerViT_demo"
TRAINER_MODULE = "nnunet_mae_demo_trainers.py"
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class Budget:
    """Dataset size, network size and training length of one `--budget`."""
    num_cases: int  # labelled
    num_unlabeled: int
    num_test_cases: int
    shape: tuple[int, int, int]
    difficulty: float
    vit: dict  # embed_dim, depth, num_heads
    decoder: str  # "unetr" or "patch" (nnUNetTrainerViT.decoder)
    mae_decoder: dict  # mae_decoder_dim, mae_decoder_depth, mae_decoder_heads
    pretrain_epochs: int
    pretrain_iterations: int
    finetune_epochs: int  # fine-tuning and from scratch alike
    finetune_iterations: int
    val_iterations: int


BUDGETS: dict[str, Budget] = {
    # the test's budget: checks that every stage runs, 2-3 minutes on 2 CPU cores; the Dice means nothing
    "tiny": Budget(num_cases=10, num_unlabeled=4, num_test_cases=2, shape=(24, 32, 24), difficulty=0.5,
                   vit={"embed_dim": 48, "depth": 4, "num_heads": 4}, decoder="unetr",
                   mae_decoder={"mae_decoder_dim": 32, "mae_decoder_depth": 1, "mae_decoder_heads": 4},
                   pretrain_epochs=2, pretrain_iterations=4, finetune_epochs=2, finetune_iterations=3,
                   val_iterations=2),
    # under 10 minutes on 2 CPU cores; pre-training gets about 10x the iterations of each fine-tuning run
    "default": Budget(num_cases=8, num_unlabeled=60, num_test_cases=8, shape=(32, 40, 32), difficulty=1.0,
                      vit={"embed_dim": 128, "depth": 6, "num_heads": 4}, decoder="unetr",
                      mae_decoder={"mae_decoder_dim": 64, "mae_decoder_depth": 2, "mae_decoder_heads": 4},
                      pretrain_epochs=40, pretrain_iterations=40, finetune_epochs=6, finetune_iterations=25,
                      val_iterations=4),
    # the same data, 3x the pre-training and 2x the fine-tuning: about 15 minutes on 2 CPU cores
    "long": Budget(num_cases=8, num_unlabeled=60, num_test_cases=8, shape=(32, 40, 32), difficulty=1.0,
                   vit={"embed_dim": 128, "depth": 6, "num_heads": 4}, decoder="unetr",
                   mae_decoder={"mae_decoder_dim": 64, "mae_decoder_depth": 2, "mae_decoder_heads": 4},
                   pretrain_epochs=120, pretrain_iterations=40, finetune_epochs=12, finetune_iterations=25,
                   val_iterations=4),
}

# Gains (pre-trained minus scratch, mean Dice on the test cases) measured with `nnunet_mae demo --seed S`; the
# tables are in documentation/benchmarks.md. Filled in from those runs, printed next to each run's own gain.
MEASURED_GAINS: dict[str, dict] = {
    "default": {"seeds": [0, 1, 2], "gains": [0.015, -0.004, -0.017],
                "machine": "a 2-core AMD EPYC with AVX512-BF16 (bf16), 2026-11-30"},
}

TRAINERS_TEMPLATE = '''"""Trainer variants of `nnunet_mae demo` (budget {budget!r}), written by nnunet_mae.cli.demo.

A small ViT and short schedules so that the demo finishes in minutes on a CPU. On your own data use the
full-size trainers nnUNetTrainerMAEPretrain, nnUNetTrainerMAEFinetune and nnUNetTrainerViT (or variants
like these: settings are attributes set after super().__init__()).
"""

import torch

from nnunet_mae.training.trainers import nnUNetTrainerMAEFinetune, nnUNetTrainerMAEPretrain, nnUNetTrainerViT


class _DemoViT:
    decoder = {decoder!r}

    @classmethod
    def vit_dimensions(cls):
        return {vit!r}


class _DemoSegmentationBudget(_DemoViT):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.seed = {seed}
        self.num_epochs = {finetune_epochs}
        self.num_iterations_per_epoch = {finetune_iterations}
        self.num_val_iterations_per_epoch = {val_iterations}


class {pretrain}(_DemoViT, nnUNetTrainerMAEPretrain):
    mae_decoder_dim = {mae_decoder_dim}
    mae_decoder_depth = {mae_decoder_depth}
    mae_decoder_heads = {mae_decoder_heads}
    finetune_trainer_name = "{finetune}"

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.seed = {seed}
        self.num_epochs = {pretrain_epochs}
        self.num_iterations_per_epoch = {pretrain_iterations}
        self.num_val_iterations_per_epoch = {val_iterations}
        self.reconstruction_png_every = {pretrain_epochs}  # first and last epoch


class {finetune}(_DemoSegmentationBudget, nnUNetTrainerMAEFinetune):
    pretrain_trainer_name = "{pretrain}"


class {scratch}(_DemoSegmentationBudget, nnUNetTrainerViT):
    pass
'''


def write_trainer_module(folder: Path, budget_name: str, seed: int = 0) -> Path:
    b = BUDGETS[budget_name]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TRAINER_MODULE
    path.write_text(TRAINERS_TEMPLATE.format(
        budget=budget_name, seed=seed, vit=dict(b.vit), decoder=b.decoder, pretrain=PRETRAIN, finetune=FINETUNE,
        scratch=SCRATCH,
        pretrain_epochs=b.pretrain_epochs, pretrain_iterations=b.pretrain_iterations,
        finetune_epochs=b.finetune_epochs, finetune_iterations=b.finetune_iterations,
        val_iterations=b.val_iterations, **b.mae_decoder))
    return path


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


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


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


def read_dice(summary_file: Path) -> dict[str, float]:
    """Mean Dice per label name and over the foreground from nnUNetv2_evaluate_simple's summary.json."""
    from nnunet_mae.data.synthetic import LABELS

    summary = json.loads(summary_file.read_text())
    dice = {name: float(summary["mean"][str(value)]["Dice"]) for name, value in LABELS.items() if value > 0}
    dice["mean"] = float(summary["foreground_mean"]["Dice"])
    return dice


# ----------------------------------------------------------------------------------------------------------------------
# the picture


def _slice_with_most_labels(label) -> int:
    """The index along axis 0 with the most foreground among the slices that show every label present."""
    import numpy as np

    flat = label.reshape(label.shape[0], -1)
    counts = np.stack([(flat == v).sum(1) for v in np.unique(label) if v > 0])  # (labels, slices)
    total = counts.sum(0)
    return int(np.argmax(total + (counts > 0).all(0) * (total.max() + 1)))


def write_summary_png(path: Path, reconstruction_png: Path | None, image_file: Path, label_file: Path,
                      predictions: dict[str, Path], dice: dict[str, dict[str, float]]) -> Path:
    """Top: a reconstruction example of the pre-training run. Bottom: image, ground truth and both predictions
    of one test case, on the slice (axis 0) with the most foreground."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import SimpleITK as sitk
    from matplotlib.colors import ListedColormap

    def read(p: Path):
        return sitk.GetArrayFromImage(sitk.ReadImage(str(p)))

    image, label = read(image_file), read(label_file)
    z = _slice_with_most_labels(label)
    panels = [("image", None), ("ground truth", label)]
    panels += [(f"{name}\n(mean Dice on the test set {dice[name]['mean']:.2f})", read(p)) for name, p in
               predictions.items()]
    colours = ListedColormap(["tab:red", "tab:cyan"])

    fig = plt.figure(figsize=(4 * len(panels), 10))
    grid = fig.add_gridspec(2, len(panels), height_ratios=(1.3, 1))
    top = fig.add_subplot(grid[0, :])
    if reconstruction_png is not None:
        top.imshow(plt.imread(str(reconstruction_png)))
        top.set_title(f"MAE pre-training: masked-token reconstruction ({reconstruction_png.name})")
    else:
        top.text(0.5, 0.5, "no reconstruction example found", ha="center", va="center")
    top.set_axis_off()
    for i, (title, seg) in enumerate(panels):
        ax = fig.add_subplot(grid[1, i])
        ax.imshow(image[z], cmap="gray")
        if seg is not None:
            ax.imshow(np.ma.masked_equal(seg[z], 0), cmap=colours, vmin=1, vmax=2, alpha=0.5, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.text(0.5, 0.02, f"test case {label_file.name.split('.')[0]}, slice {z} of axis 0; "
                        f"red: organ_a (label 1), cyan: organ_b (label 2)", ha="center")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------------------------------
# the command


def format_table(dice: dict[str, dict[str, float]], times: dict[str, float]) -> str:
    columns = list(next(iter(dice.values())))
    width = max(len(name) for name in dice) + 2
    lines = ["Dice on the test cases (nnUNetv2_evaluate_simple):",
             " " * width + "".join(f"{c:>10}" for c in columns)]
    lines += [f"{name:<{width}}" + "".join(f"{row[c]:>10.3f}" for c in columns) for name, row in dice.items()]
    width = max(len(t) for t in [*times, "total"]) + 2
    lines += ["", "Time per stage:"]
    lines += [f"  {title:<{width}}{_minutes(seconds):>7}" for title, seconds in times.items()]
    lines.append(f"  {'total':<{width}}{_minutes(sum(times.values())):>7}")
    return "\n".join(lines)


def gain_line(dice: dict[str, dict[str, float]], budget_name: str) -> str:
    """This run's gain of pre-training, next to the gain measured over several seeds (documentation)."""
    gain = dice["MAE pre-trained"]["mean"] - dice["from scratch"]["mean"]
    line = f"This run: MAE pre-trained - from scratch = {gain:+.3f} mean Dice."
    measured = MEASURED_GAINS.get(budget_name)
    if measured:
        gains = measured["gains"]
        mean, spread = sum(gains) / len(gains), max(gains) - min(gains)
        verdict = ("a gain beyond the spread between seeds" if mean > spread else
                   "no gain beyond the spread between seeds at this budget: the demo shows the workflow, not the "
                   "benefit")
        line += (f" Measured with seeds {', '.join(map(str, measured['seeds']))} on {measured['machine']}: "
                 f"{', '.join(f'{g:+.3f}' for g in gains)} (mean {mean:+.3f}, spread {spread:.3f}): {verdict} "
                 f"(documentation/benchmarks.md).")
    return line


def write_unlabeled_pool(out: Path, b: Budget) -> Path:
    """Images without labels (same kind of anatomy, other cases), named unlabeled_XXX_0000.nii.gz."""
    from nnunet_mae.data.synthetic import write_synthetic_dataset

    pool = write_synthetic_dataset(out / "unlabeled_source", dataset_id=DATASET_ID + 1, name="Pool",
                                   num_cases=b.num_unlabeled, shape=b.shape, difficulty=b.difficulty, seed=1)
    images = out / "unlabeled_images"
    images.mkdir(exist_ok=True)
    for f in (pool / "imagesTr").glob("case_*"):
        f.rename(images / f.name.replace("case_", "unlabeled_"))
    shutil.rmtree(out / "unlabeled_source")
    return images


def run_demo(out: Path, budget_name: str, seed: int = 0) -> int:
    b = BUDGETS[budget_name]
    trainers = out / "trainers"
    device = _device()
    settings = subprocess_environment(out, trainers, device)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **settings)
    demo = Demo(out=out, env=env, num_stages=11)
    train_env = {} if device == "cuda" else {"nnUNet_n_proc_DA": "0"}  # augmentation in the main process on a CPU
    raw = out / "nnUNet_raw" / DATASET
    preds = {"MAE pre-trained": out / "predictions" / "pretrained", "from scratch": out / "predictions" / "scratch"}
    results = out / "nnUNet_results" / DATASET
    from nnunet_mae.training.precision import choose_precision

    precision = choose_precision("auto", device)  # what the trainers will choose; each logs it at its start
    hardware = torch_device_name(device)
    print(f"nnunet_mae demo (budget {budget_name!r}, seed {seed}, device {device}: {hardware}) in {out}\n"
          f"The trainers run in {precision.describe()}.\n"
          f"Each stage writes its output to {out / 'logs'} (follow one with tail -f).")

    started = demo.begin(f"write a synthetic dataset: {b.num_cases} labelled training cases, {b.num_unlabeled} "
                         f"images without labels, {b.num_test_cases} test cases, shape {b.shape}")
    from nnunet_mae.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(out / "nnUNet_raw", dataset_id=DATASET_ID, name=DATASET_NAME, num_cases=b.num_cases,
                            shape=b.shape, num_test_cases=b.num_test_cases, difficulty=b.difficulty, seed=0)
    unlabeled = write_unlabeled_pool(out, b)
    write_trainer_module(trainers, budget_name, seed)
    for sub in ("nnUNet_preprocessed", "nnUNet_results"):
        (out / sub).mkdir(exist_ok=True)
    demo.end("dataset", started)

    n_proc = env["nnUNet_def_n_proc"]
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
    dice = {name: read_dice(folder / "summary.json") for name, folder in reversed(preds.items())}

    started = demo.begin("write demo_summary.png")
    reconstructions = sorted((results / f"{PRETRAIN}__nnUNetPlans__{CONFIGURATION}" / "fold_all" /
                              "reconstructions").glob("epoch_*.png"))
    test_case = sorted((raw / "labelsTs").glob("*.nii.gz"))[0]
    png = write_summary_png(out / "demo_summary.png", reconstructions[-1] if reconstructions else None,
                            raw / "imagesTs" / test_case.name.replace(".nii.gz", "_0000.nii.gz"), test_case,
                            {name: folder / test_case.name for name, folder in preds.items()}, dice)
    demo.end("summary picture", started)

    script = out / "commands.sh"
    script.write_text("#!/usr/bin/env bash\n"
                      "# The nnU-Net commands `nnunet_mae demo` ran. On your own data: set the three folders,\n"
                      "# drop the demo's trainer folder from nnUNet_extTrainer and use the full-size trainers\n"
                      "# nnUNetTrainerMAEPretrain, nnUNetTrainerMAEFinetune and nnUNetTrainerViT.\nset -e\n"
                      + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in settings.items())
                      + "\n".join(demo.commands) + "\n")
    (out / "demo_results.json").write_text(json.dumps({"budget": budget_name, "seed": seed, "device": device,
                                                       "hardware": hardware,
                                                       "precision": precision.describe(), "dice": dice,
                                                       "seconds": demo.times}, indent=2))

    print("\n" + format_table(dice, demo.times))
    print("\n" + gain_line(dice, budget_name))
    print(f"\nWhere everything is (in {out}):\n"
          f"  dataset       {raw}\n"
          f"  logs          {out / 'logs'}\n"
          f"  results       {results}  (checkpoints, progress.png, reconstructions/, validation/)\n"
          f"  predictions   {out / 'predictions'}  (summary.json of each: per-case metrics)\n"
          f"  picture       {png}\n"
          f"  trainers      {trainers / TRAINER_MODULE}  (the small *_demo variants)\n"
          f"  commands      {script}\n"
          f"\nThe nnU-Net commands run (with the environment in {script.name}):\n"
          + "\n".join(f"  {c}" for c in demo.commands)
          + f"\nOn your own data use the full-size trainers: {PRETRAIN.removesuffix('_demo')}, "
            f"{FINETUNE.removesuffix('_demo')} and {SCRATCH.removesuffix('_demo')}.")
    return 0


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
