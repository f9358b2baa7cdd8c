"""Does pre-training pay once training has converged? Hippocampus at 10% of the labels, every arm run to a measured
convergence budget (issue 25).

    python benchmarks/converged.py --work /work/ws/converged                   # every stage, every backbone
    python benchmarks/converged.py --work /work/ws/converged --backbones vit   # the ViT-S pair only
    python benchmarks/converged.py --work /work/ws/converged --stages report   # the table from what has finished

Stages, each skipped where its output exists, so that the benchmark continues where it stopped (an interrupted
nnU-Net run continues with `--c`); every finished run writes records/<run>.json with the CPU it ran on, since the
machine may change between sessions. What has landed in --out (results.json, protocol.json: committed as runs
finish) is the durable record: a new or lost --work continues from it, each scout's and each reference's budget
written back (the reference is not timed again on the new machine) and every run found there skipped (`restore`,
`has_landed`); a lost pre-training is run again.
1. prepare: label_efficiency.py's workspace and split (fold 0: nnU-Net's 160 training / 40 validation cases; fold 1:
   a seeded 16 of fold 0's training cases, the same 40 validation cases), and the dataset's imagesTs through
   `nnunet_mae add_unlabeled`: pre-training sees every image but the 40 validation cases.
2. scout: each backbone's scratch arm, seed 0, on the 16 cases, for up to --cap_epochs epochs of --iterations,
   stopped where it converges: the first epoch e (at least --min_epochs) at which nnU-Net's EMA pseudo Dice,
   without its start (`--curve weighted`: `weighted_mean`), has moved by less than --tolerance over the last
   quarter of the run so far (epochs 3e/4 to e) and is at least --min_dice (a run that still predicts background
   only has not started); e epochs is the budget of every run of the backbone. A scout that never converges gives
   its cap, and its runs say `"converged": false`. (`--curve ema` reads nnU-Net's EMA as it is, which keeps the
   first epoch's pseudo Dice, about 0, at weight 0.9^e: a network at 0.84 from its second epoch on passes at epoch
   54 by it, at 21 without the start. The ViT-S scout ran with it; each run is judged by its scout's criterion.)
   Result: scout_<backbone>.json (the EMA curve, seconds per epoch, the CPU).
3. pretrain: each backbone's MAE pre-training on fold 0's training images and the unlabeled ones, for up to
   --pretrain_cap epochs of --pretrain_iterations, probed every --probe_every epochs with the 16 labelled cases
   (probe fold 1), a snapshot of the network and nnU-Net's checkpoint_latest (to resume from) at every probe. The
   plateau: the snapshot at which the probe's stopping signal came ("pre-training has stopped paying"), or the last
   one if it never came.
4. runs: each backbone's scratch arm and its arm fine-tuned from the plateau snapshot, --seeds seeds each, at the
   scout's budget (the scratch runs without waiting for the pre-training); each run's own EMA pseudo Dice is judged
   by the same criterion (`converged`). Dice: nnU-Net's own validation of the 40 cases (no test-time mirroring,
   every arm alike).
5. check: fine-tuning (seed 0) from the first and the last snapshot too: does the probe rank the early, plateau and
   late encoders as fine-tuning does?
6. reference: nnU-Net's default CNN from scratch (what a user would train otherwise), --seeds seeds, at the same
   training time as the backbone's scratch arm: its iterations are the arm's times the ratio of their train_step
   times, measured side by side in one process (label_efficiency.py's timing worker) on the machine it runs on.
   nnU-Net's trainer as nnU-Net runs it: fp32 on a CPU.
7. report: results.json (one row per run), results.md and learning_curves.png in --out.
Order: every backbone's scout, pre-training and runs first (the answers), then the stopping-signal checks, then the
references.
Trainers: the scratch and fine-tuning arms are label_efficiency.py's `_le` trainers, with this benchmark's budget
files; the pre-trainings, and the CNN pair's scratch arm (nnU-Net's trainer in the precision of the package's CNN
fine-tuning, so that the pair differs in its start only), are in benchmarks/trainers/converged_trainers.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "trainers")]
from common import (CONFIGURATION, DEFAULT_DATA, machine_info, run_logged, split_choices,  # noqa: E402
                    trainer_folder)
from label_efficiency import environment, prepare  # noqa: E402
from converged_trainers import SCOUT_FILE  # noqa: E402
from label_efficiency_protocol import ARMS, FRACTIONS  # noqa: E402

from nnunet_mae.transfer.checkpoint_io import safe_torch_load  # noqa: E402

LABELLED_FOLD = FRACTIONS["10%"][0]  # the 16 labelled cases: every fine-tuning run and the probe
PRETRAIN_FOLD = 0  # fold 0's training images (+ the unlabeled ones): never the 40 validation cases


@dataclass(frozen=True)
class Backbone:
    title: str
    scout: str  # the scratch arm's trainer, writing its EMA pseudo Dice every epoch (converged_trainers.py)
    scratch: str  # trainer of the scratch arm (label_efficiency_trainers.py; the CNN's: converged_trainers.py)
    finetune: str  # trainer of the arm fine-tuned from the pre-trained encoder (label_efficiency_trainers.py)
    pretrain: str  # its pre-training (benchmarks/trainers/converged_trainers.py)
    timing_arm: str | None  # label_efficiency.py's arm of the scratch trainer, timed against the reference CNN


BACKBONES = {
    "vit": Backbone("ViT-S UNETR-style", "nnUNetTrainerViT_scout", "nnUNetTrainerViT_le", "nnUNetTrainerMAEFinetune_le",
                    "nnUNetTrainerMAEPretrain_cv", "vit"),
    # both arms in the package's precision (`auto`: bf16 on CPUs with native bf16); no reference of its own
    "cnn": Backbone("nnU-Net's default CNN (PlainConvUNet, nnUNetPlans)", "nnUNetTrainerAutocast_scout",
                    "nnUNetTrainerAutocast_le", "nnUNetTrainerMAEFinetune_CNN_le", "nnUNetTrainerMAEPretrain_CNN_cv",
                    None),
}
REFERENCE, REFERENCE_ARM = "nnUNetTrainer_le", "cnn"  # nnU-Net's default CNN from scratch; label_efficiency.py's arm


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="vit,cnn")
    parser.add_argument("--stages", default="prepare,scout,pretrain,runs,check,reference,report")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=50, help="fine-tuning iterations per epoch")
    parser.add_argument("--val_iterations", type=int, default=10, help="validation batches per epoch (pseudo Dice)")
    parser.add_argument("--cap_epochs", type=int, default=100, help="the scout's cap")
    parser.add_argument("--min_epochs", type=int, default=20)
    parser.add_argument("--tolerance", type=float, default=0.01, help="EMA pseudo Dice change over the last quarter")
    parser.add_argument("--min_dice", type=float, default=0.1, help="EMA pseudo Dice a converged run has reached")
    parser.add_argument("--curve", choices=sorted(CURVES), default="weighted",
                        help="the curve the criterion reads: nnU-Net's EMA pseudo Dice without its start, or as it is")
    parser.add_argument("--pretrain_iterations", type=int, default=100)
    parser.add_argument("--pretrain_cap", type=int, default=40, help="pre-training epochs at most")
    parser.add_argument("--probe_every", type=int, default=4, help="pre-training epochs between probes")
    parser.add_argument("--timing_rounds", type=int, default=5, help="train_steps timed per trainer (reference)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet_mae_converged"))
    parser.add_argument("--out", type=Path, default=HERE.parent / "documentation" / "benchmarks" / "converged_cpu")
    args = parser.parse_args(argv)
    args.backbones = split_choices(parser, args.backbones, sorted(BACKBONES), "backbone")
    return args


# ----- convergence ---------------------------------------------------------------------------------------------------
EMA_DECAY = 0.9  # nnU-Net's logger: ema = 0.9 * ema + 0.1 * pseudo Dice, started at the first epoch's pseudo Dice


def weighted_mean(ema: list[float]) -> list[float]:
    """nnU-Net's EMA pseudo Dice without its start: after each epoch, the mean of the epochs' pseudo Dice so far with
    the EMA's own weights (0.9^age), divided by the sum of those weights (as Adam corrects its moments). nnU-Net's
    EMA starts at the first epoch's pseudo Dice and keeps it at weight 0.9^e, ten times the weight of any later
    epoch of that age; a first epoch at about 0 then keeps the last quarter moving by more than 0.01 until about
    epoch 50, however early the network stopped improving. The epochs' pseudo Dice come back from the EMA exactly."""
    if not ema:
        return []
    pseudo = [ema[0]] + [(ema[k] - EMA_DECAY * ema[k - 1]) / (1 - EMA_DECAY) for k in range(1, len(ema))]
    curve, total, weights = [], 0.0, 0.0
    for value in pseudo:
        total, weights = EMA_DECAY * total + value, EMA_DECAY * weights + 1
        curve.append(total / weights)
    return curve


CURVES = {"weighted": weighted_mean, "ema": list}


def convergence_rule(args) -> dict:
    """The criterion of this invocation, as the scout records it."""
    return {"tolerance": args.tolerance, "min_dice": args.min_dice, "min_epochs": args.min_epochs, "curve": args.curve}


def curve_name(rule: dict) -> str:
    """The curve a criterion reads; a rule that names none (written before `--curve`) read nnU-Net's EMA as it is."""
    return rule.get("curve", "ema")


def criterion_curve(ema: list[float], rule: dict) -> list[float]:
    return CURVES[curve_name(rule)](ema)


def quarter_is_flat(ema: list[float], epochs: int, tolerance: float, min_dice: float) -> bool:
    """After `epochs` epochs: the EMA pseudo Dice moved by less than `tolerance` over the last quarter of them
    (at least two values) and has reached `min_dice`."""
    window = ema[max(0, epochs - 1 - max(1, epochs // 4)):epochs]
    return len(window) >= 2 and max(window) - min(window) < tolerance and ema[epochs - 1] >= min_dice


def convergence_epoch(ema: list[float], tolerance: float, min_dice: float, min_epochs: int) -> int | None:
    """The first epoch count at which the run counts as converged, None if it never does."""
    return next((e for e in range(min_epochs, len(ema) + 1) if quarter_is_flat(ema, e, tolerance, min_dice)), None)


# ----- what has landed ----------------------------------------------------------------------------------------------
def landed(args) -> tuple[list[dict], dict]:
    """The runs and the protocol in --out: what earlier invocations, perhaps on a machine since lost, reported."""
    def read(name: str, empty):
        path = args.out / name
        return json.loads(path.read_text()) if path.is_file() else empty

    return read("results.json", []), read("protocol.json", {})


def has_landed(args, arm: str, seed: int) -> bool:
    return any(r["arm"] == arm and r["seed"] == seed for r in landed(args)[0])


def restore(args) -> None:
    """Each scout that has landed, back in --work (its result is the budget of every run of the backbone), and each
    reference's budget (its step times were measured on the machine its first runs trained on: its remaining seeds
    train as long as those, not as a new machine's timing would say)."""
    protocol = landed(args)[1]
    for name, budget in protocol.get("references", {}).items():
        if name in BACKBONES and not budget_file(args, "reference", name).is_file():
            args.work.mkdir(parents=True, exist_ok=True)
            write_budget(budget_file(args, "reference", name), budget)
            print(f"{name}: the reference's budget restored from {args.out / 'protocol.json'}", flush=True)
    for name, found in protocol.get("scouts", {}).items():
        if name in BACKBONES and not scout_file(args, name).is_file():
            (args.work / "records").mkdir(parents=True, exist_ok=True)
            scout_file(args, name).write_text(json.dumps({k: v for k, v in found.items() if k != "cpu"}, indent=1))
            (args.work / "records" / f"scout_{name}.json").write_text(json.dumps(
                {"run": f"scout_{name}", "restored_from": str(args.out / "protocol.json"), "finished": time.time(),
                 "machine": {"cpu": found.get("cpu")}}, indent=1))
            print(f"{name}: the scout's result restored from {args.out / 'protocol.json'}", flush=True)


# ----- where things live ---------------------------------------------------------------------------------------------
def scout_folder(args, name: str) -> Path:
    return trainer_folder(args.work / "results" / "scout", BACKBONES[name].scout, LABELLED_FOLD)


def scout_file(args, name: str) -> Path:
    return args.work / f"scout_{name}.json"


def pretrain_folder(args, name: str) -> Path:
    return trainer_folder(args.work / "results" / "pretraining", BACKBONES[name].pretrain, PRETRAIN_FOLD)


def run_folder(args, name: str, pretrained: bool, seed: int, snapshot: Path | None = None) -> Path:
    """Seed k of an arm in results/seed<k>; fine-tuning from another snapshot than the plateau in results/check_*."""
    sub = f"check_{snapshot.stem}" if snapshot is not None else f"seed{seed}"
    trainer = BACKBONES[name].finetune if pretrained else BACKBONES[name].scratch
    return trainer_folder(args.work / "results" / sub, trainer, LABELLED_FOLD)


def arm_name(name: str, pretrained: bool) -> str:
    """The arm's name in logs and results: `<backbone>_scratch` or `<backbone>_mae`."""
    return f"{name}_{'mae' if pretrained else 'scratch'}"


def reference_arm_name(name: str) -> str:
    """nnU-Net's CNN from scratch at the training time of the backbone's scratch arm."""
    return f"{REFERENCE_ARM}_same_time_as_{name}"


def reference_folder(args, name: str, seed: int) -> Path:
    return trainer_folder(args.work / "results" / f"reference_{name}_seed{seed}", REFERENCE, LABELLED_FOLD)


def budget_file(args, stage: str, name: str) -> Path:
    return args.work / f"budget_{stage}_{name}.json"


def write_budget(path: Path, budget: dict) -> None:
    """The budget file the trainers read; refuses to change one that runs were trained with."""
    if path.is_file() and json.loads(path.read_text()) != budget:
        sys.exit(f"{path} holds another budget (other options): runs trained with it would not be comparable. Use "
                 f"the options of the first invocation, another --work, or delete {path} and the runs it made.")
    path.write_text(json.dumps(budget, indent=1))


def record(args, log: str, **values) -> None:
    """records/<log>.json: a finished stage or run, with the machine it finished on."""
    (args.work / "records").mkdir(parents=True, exist_ok=True)
    (args.work / "records" / f"{log}.json").write_text(json.dumps(
        {"run": log, **values, "finished": time.time(), "machine": machine_info(args.device)}, indent=1))


def nnunet_train(args, env: dict, trainer: str, fold: int, folder: Path, *, seed: int, budget: Path,
                 pretrained: Path | None = None) -> tuple[list[str], dict]:
    """The command line and environment of one nnU-Net run (resumed with --c where it has a checkpoint)."""
    run_env = dict(env, LABEL_EFFICIENCY_BUDGET=str(budget), LABEL_EFFICIENCY_SEED=str(seed),
                   nnUNet_results=str(folder.parents[2]))
    if pretrained is not None:
        run_env["nnUNet_MAE_pretrained"] = str(pretrained)
    resume = ["--c"] if any((folder / f).is_file() for f in ("checkpoint_latest.pth", "checkpoint_final.pth")) else []
    return ["nnUNetv2_train", "4", CONFIGURATION, str(fold), "-tr", trainer, "-device", args.device] + resume, run_env


def train(args, env: dict, trainer: str, fold: int, folder: Path, log: str, *, done: str, seed: int,
          budget: Path, pretrained: Path | None = None) -> None:
    """One nnU-Net run to its end, skipped where `done` exists, recorded (fine-tuning runs: with the snapshot and
    the pre-training they started from)."""
    if (folder / done).is_file():
        return
    command, run_env = nnunet_train(args, env, trainer, fold, folder, seed=seed, budget=budget, pretrained=pretrained)
    seconds = run_logged(command, run_env, args.work / "logs" / f"{log}.log", append=True, echo=True)
    started_from = {} if pretrained is None else {"snapshot": pretrained.stem, "pretraining": pretraining_id(args,
                                                                                                            pretrained)}
    record(args, log, folder=str(folder), wall_seconds_last_invocation=seconds, **started_from)


# ----- stages --------------------------------------------------------------------------------------------------------
def add_imagesTs(args, env: dict) -> None:
    from nnunet_mae.data.unlabeled import unlabeled_folder, unlabeled_identifiers

    base = args.work / "preprocessed" / "Dataset004_Hippocampus"
    plans = json.loads((base / "nnUNetPlans.json").read_text())
    folder = unlabeled_folder(base, plans["configurations"][CONFIGURATION]["data_identifier"])
    if not (args.data / "imagesTs").is_dir() or unlabeled_identifiers(folder):
        return
    run_logged(["nnunet_mae", "add_unlabeled", "-d", "4", "--include_imagesTs", "-c", CONFIGURATION, "-np", "2"],
               env, args.work / "logs" / "add_unlabeled.log", echo=True)


def read_progress(folder: Path) -> dict:
    path = folder / SCOUT_FILE
    return json.loads(path.read_text()) if path.is_file() else {"ema_fg_dice": [], "epoch_seconds": []}


def scout(args, env: dict, name: str) -> None:
    """The scratch arm until its EMA pseudo Dice is flat (then stopped) or the cap: the backbone's budget."""
    if scout_file(args, name).is_file():
        return
    spec, path, folder = BACKBONES[name], budget_file(args, "scout", name), scout_folder(args, name)
    write_budget(path, {"epochs": args.cap_epochs, "iterations_per_epoch": {spec.scout: args.iterations},
                        "val_iterations": args.val_iterations, "attributes": {"save_every": 5}})
    command, run_env = nnunet_train(args, env, spec.scout, LABELLED_FOLD, folder, seed=0, budget=path)
    log = args.work / "logs" / f"scout_{name}.log"
    print(f"$ {' '.join(command)}  (log: {log}; stopped once converged)", flush=True)
    found, rule = None, convergence_rule(args)
    with open(log, "a") as f:
        process = subprocess.Popen(command, env=run_env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        while found is None and process.poll() is None:
            time.sleep(15)
            found = convergence_epoch(criterion_curve(read_progress(folder)["ema_fg_dice"], rule), args.tolerance,
                                      args.min_dice, args.min_epochs)
        if process.poll() is None:  # converged
            stop(process)
        elif process.returncode != 0:
            sys.exit(f"{' '.join(command)} ended with exit code {process.returncode} before converging (see {log}); "
                     f"run the benchmark again to continue from the scout's last checkpoint (every 5 epochs).")
    progress = read_progress(folder)
    epochs = found or args.cap_epochs
    scout_file(args, name).write_text(json.dumps(
        {"backbone": name, "trainer": spec.scout, "epochs": epochs, "converged": found is not None,
         "iterations": epochs * args.iterations, "train_minutes": sum(progress["epoch_seconds"][:epochs]) / 60,
         **progress, "criterion": rule}, indent=1))
    record(args, f"scout_{name}", folder=str(folder), epochs=epochs, converged=found is not None)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to a run started in its own session (an nnunet_mae trainer ends cleanly; nnU-Net's own, such as the CNN
    scout's, dies at once), then SIGKILL to whatever of its session is left: nnU-Net's data augmentation workers
    outlive a parent killed by SIGTERM, idle, holding hundreds of MB each."""
    process.terminate()
    process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # nothing left
        pass


def fine_tuning_epochs(args, name: str) -> tuple[int, bool] | None:
    """(epochs, converged) from the scout; None until it has finished."""
    if not scout_file(args, name).is_file():
        return None
    found = json.loads(scout_file(args, name).read_text())
    return found["epochs"], found["converged"]


def pretrain(args, env: dict, name: str) -> None:
    spec, path = BACKBONES[name], budget_file(args, "pretrain", name)
    write_budget(path, {"epochs": args.pretrain_cap, "iterations_per_epoch": {spec.pretrain: args.pretrain_iterations},
                        "val_iterations": 2,
                        "attributes": {"probe_every": args.probe_every, "probe_fold": LABELLED_FOLD,
                                       "save_every": args.probe_every}})  # resumable: nnU-Net's default is 50
    train(args, env, spec.pretrain, PRETRAIN_FOLD, pretrain_folder(args, name), f"pretrain_{name}",
          done="checkpoint_final.pth", seed=0, budget=path)


def pretraining_id(args, snapshot: Path) -> float | None:
    """Which pre-training a snapshot belongs to: when it finished (one --work may lose it and run it again)."""
    name = next(n for n in BACKBONES if snapshot.is_relative_to(pretrain_folder(args, n)))
    path = args.work / "records" / f"pretrain_{name}.json"
    return json.loads(path.read_text())["finished"] if path.is_file() else None


def snapshots(args, name: str) -> dict[str, Path] | None:
    """The early (first), plateau and late (last) snapshots of a finished pre-training; None until it has finished.
    The plateau: the snapshot at which the stopping signal came (what a user who follows it fine-tunes from), or
    the last one if it never came."""
    folder = pretrain_folder(args, name)
    if not (folder / "checkpoint_final.pth").is_file():
        return None
    found = sorted((folder / "snapshots").glob("epoch_*.pth"))
    stop = safe_torch_load(folder / "checkpoint_final.pth").get("probe", {}).get("stop_epoch")
    plateau = folder / "snapshots" / f"epoch_{stop + 1:04d}.pth" if stop is not None else found[-1]
    return {"early": found[0], "plateau": plateau, "late": found[-1]}


def runs_budget(args, name: str) -> Path | None:
    epochs = fine_tuning_epochs(args, name)
    if epochs is None:
        return None
    spec, path = BACKBONES[name], budget_file(args, "runs", name)
    write_budget(path, {"epochs": epochs[0], "iterations_per_epoch": {spec.scratch: args.iterations,
                                                                      spec.finetune: args.iterations},
                        "val_iterations": args.val_iterations,
                        "attributes": {"save_every": 5}})  # a lost machine loses at most 5 epochs of a run
    return path


def fine_tune(args, env: dict, name: str, check: bool) -> None:
    spec, budget, chosen = BACKBONES[name], runs_budget(args, name), snapshots(args, name)
    if budget is None:
        print(f"{name}: the scout has not finished; skipping its runs.", flush=True)
        return
    if chosen is None:
        print(f"{name}: the pre-training has not finished; its scratch runs only.", flush=True)
    if check:
        for which in ("early", "late") if chosen else ():
            if chosen[which] != chosen["plateau"]:
                train(args, env, spec.finetune, LABELLED_FOLD, run_folder(args, name, True, 0, chosen[which]),
                      f"check_{name}_{chosen[which].stem}", done="validation/summary.json", seed=0, budget=budget,
                      pretrained=chosen[which])
        return
    for seed in range(args.seeds):
        for pretrained in (False, True) if chosen else (False,):
            if has_landed(args, arm_name(name, pretrained), seed):
                continue
            train(args, env, spec.finetune if pretrained else spec.scratch, LABELLED_FOLD,
                  run_folder(args, name, pretrained, seed), f"{arm_name(name, pretrained)}_seed{seed}",
                  done="validation/summary.json", seed=seed, budget=budget,
                  pretrained=chosen["plateau"] if pretrained else None)


def step_seconds(args, env: dict, name: str) -> dict[str, float]:
    """Median train_step seconds of the backbone's scratch trainer and of the reference CNN, timed side by side."""
    work = args.work / f"reference_timing_{name}"
    if not (work / "step_times.json").is_file():
        run_logged([sys.executable, str(HERE / "label_efficiency.py"), "--time_worker", "--device", args.device,
                    "--arms", f"{REFERENCE_ARM},{BACKBONES[name].timing_arm}", "--work", str(work),
                    "--timing_rounds", str(args.timing_rounds)],
                   dict(env, nnUNet_results=str(work / "results"), nnUNet_n_proc_DA="0"),
                   args.work / "logs" / f"reference_timing_{name}.log", echo=True)
    measured = json.loads((work / "step_times.json").read_text())
    record(args, f"reference_timing_{name}", step_seconds=measured["step_seconds"])
    return measured["step_seconds"]


def reference_epochs(epochs: int, steps: dict[str, float], timed: str, reference: str) -> int:
    """The reference's epochs at the same training time as `epochs` epochs of `timed` (equal iterations per epoch)."""
    return max(1, round(epochs * steps[timed] / steps[reference]))


def reference(args, env: dict, name: str) -> None:
    """nnU-Net's default CNN from scratch, at the training time of the backbone's scratch arm."""
    spec = BACKBONES[name]
    if spec.timing_arm is None:
        return
    epochs = fine_tuning_epochs(args, name)
    if epochs is None:
        print(f"{name}: the scout has not finished; skipping the reference runs.", flush=True)
        return
    path = budget_file(args, "reference", name)
    options = {"iterations_per_epoch": {REFERENCE: args.iterations}, "val_iterations": args.val_iterations,
               "attributes": {"save_every": 5}, "same_time_as": {spec.scratch: epochs[0]}}
    if not path.is_file():  # timed once; a restored budget keeps the timing its first runs trained with
        steps = step_seconds(args, env, name)
        same_time = reference_epochs(epochs[0], steps, ARMS[spec.timing_arm].base, ARMS[REFERENCE_ARM].base)
        write_budget(path, {"epochs": same_time, **options, "step_seconds": steps})
    stored = json.loads(path.read_text())
    if {key: stored.get(key) for key in options} != options:
        sys.exit(f"{path} was made with other options or for another scout budget ({epochs[0]} epochs of "
                 f"{spec.scratch} now): the reference would not train as long as the arm. Use the options of the "
                 f"first invocation, or delete {path} and the reference runs it made.")
    for seed in (s for s in range(args.seeds) if not has_landed(args, reference_arm_name(name), s)):
        train(args, env, REFERENCE, LABELLED_FOLD, reference_folder(args, name, seed), f"reference_{name}_seed{seed}",
              done="validation/summary.json", seed=seed, budget=path)


STAGES = {"scout": scout, "pretrain": pretrain, "runs": lambda a, e, n: fine_tune(a, e, n, check=False),
          "check": lambda a, e, n: fine_tune(a, e, n, check=True), "reference": reference}
PHASES = (("scout", "pretrain", "runs"), ("check",), ("reference",))  # the answers, the checks, the references


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    env = environment(args)
    (args.work / "logs").mkdir(parents=True, exist_ok=True)
    restore(args)
    stages = args.stages.split(",")
    if "prepare" in stages:
        prepare(args, env)
        add_imagesTs(args, env)
    for phase in PHASES:  # a lost machine loses at most one run: every run is resumed or skipped
        for name in args.backbones:
            for stage in (s for s in phase if s in stages):
                STAGES[stage](args, env, name)
    if "report" in stages:
        from converged_report import write_report

        write_report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
