"""Label efficiency at equal fine-tuning time on Hippocampus: nnU-Net's CNN, Primus-S and the ViT-S from scratch
against the ViT-S fine-tuned from its MAE encoder (UNETR-style and patch decoder), at 10% and 100% of the labels.

    python benchmarks/label_efficiency.py                                   # CPU protocol, every stage
    python benchmarks/label_efficiency.py --stages report                   # rebuild the table from finished runs
    python benchmarks/label_efficiency.py --protocol gpu --device cuda      # adds nnU-Net's PrimusV3-S
    python benchmarks/label_efficiency.py --arms vit,mae --seconds_per_arm 420 --seeds_10 3 --seeds_100 0
                                                                            # one pair, 3 seeds, 10% of the labels

Stages, each skipped where its output exists, so an interrupted benchmark continues where it stopped:
1. prepare: nnU-Net plans and preprocesses 3d_fullres; `splits_final.json` gets two folds: 0 = nnU-Net's fold 0
   (160 training, 40 validation cases), 1 = a seeded 10% of fold 0's training cases, same validation cases. Any
   nnU-Net trainer uses them with `-f 0` / `-f 1`.
2. time: every arm's real `train_step` (one batch from its own loader, its own precision) timed side by side in
   one process, interleaved; equal time = each arm's iteration count is `seconds_per_arm / its step time`. An
   arm with the same network and precision as its scratch arm (the ViT-S + MAE arms) shares one step time with it,
   the mean of the two, so that such a pair trains for the same number of iterations.
   The counts go to budget.json, so arms can run later, elsewhere or in parallel and still get equal time.
3. pretrain: MAE pre-training once on fold 0's training images (labels unused; validation images never seen),
   shared by every MAE arm, fraction and seed; its time is reported separately and amortised.
4. runs: `nnUNetv2_train` per (fraction, seed, arm), 10% first; Dice from nnU-Net's final validation on the 40
   validation cases (no test-time mirroring, every arm alike). `--c` continues an interrupted run.
5. report: results.json, results.md and learning_curves.png in --out, from whatever has finished.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (CONFIGURATION, DATASET, DEFAULT_DATA, find_trainer_class, machine_info,  # noqa: E402
                    prepare_workspace, run_logged, split_choices, trainer_folder, workspace_environment)
from label_efficiency_protocol import (ARMS, FRACTIONS, PRETRAININGS,  # noqa: E402
                                       PROTOCOLS, SUBSET_SEED, needed_pretrainings, planned_runs,
                                       pretrained_checkpoint)
from label_efficiency_report import collect, write_report  # noqa: E402


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--arms", help="comma-separated (default: every arm of the protocol)")
    parser.add_argument("--stages", default="prepare,time,pretrain,runs,report")
    parser.add_argument("--seconds_per_arm", type=float, help="override the protocol's equal-time budget")
    parser.add_argument("--pretrain_seconds", type=float)
    parser.add_argument("--seeds_10", type=int, help="seeds at 10%% of the labels (override the protocol's)")
    parser.add_argument("--seeds_100", type=int, help="seeds at 100%% of the labels; 0 skips that fraction")
    parser.add_argument("--timing_rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet_mae_label_efficiency"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "label_efficiency")
    parser.add_argument("--time_worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = dict(PROTOCOLS[args.protocol])
    for key in ("seconds_per_arm", "pretrain_seconds", "seeds_10", "seeds_100"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    args.settings = settings
    default = [a for a, arm in ARMS.items() if args.protocol == "gpu" or not arm.gpu_only]
    args.arms = split_choices(parser, args.arms, sorted(ARMS), "arm") if args.arms else default
    return args


def environment(args) -> dict:
    return workspace_environment(args.work, LABEL_EFFICIENCY_BUDGET=str(args.work / "budget.json"))


def run(command: list[str], env: dict, log: Path) -> float:
    return run_logged(command, env, log, append=True, echo=True)  # logs kept across resumed invocations


# ----- stage 1: data and the two label fractions -------------------------------------------------------------------
def prepare(args, env: dict) -> None:
    (args.work / "records").mkdir(parents=True, exist_ok=True)
    folder = prepare_workspace(args.data, args.work, env)
    base = folder.parent
    splits_file = base / "splits_final.json"
    splits = label_fraction_splits(sorted(p.name[:-len(".b2nd")] for p in folder.glob("*.b2nd")
                                          if not p.name.endswith("_seg.b2nd")))
    if splits_file.is_file() and json.loads(splits_file.read_text()) != splits:
        sys.exit(f"{splits_file} differs from this benchmark's split; move it away or use another --work.")
    splits_file.write_text(json.dumps(splits, indent=1))


def label_fraction_splits(cases: list[str]) -> list[dict]:
    """Fold 0 = nnU-Net's default fold 0; then one fold per smaller fraction of its training cases, seeded."""
    from nnunet_mae.training.splits import NNUNET_FOLDS, NNUNET_SPLIT_SEED
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    fold0 = generate_crossval_split(cases, seed=NNUNET_SPLIT_SEED, n_splits=NNUNET_FOLDS)[0]
    folds = [None] * len(FRACTIONS)
    for fold, share in FRACTIONS.values():
        count = max(1, round(share * len(fold0["train"])))
        chosen = np.random.default_rng(SUBSET_SEED).choice(sorted(fold0["train"]), size=count, replace=False)
        folds[fold] = {"train": sorted(str(c) for c in chosen), "val": sorted(fold0["val"])}
    return folds


# ----- stage 2: step times side by side, then the equal-time budget -------------------------------------------------
def time_worker(args) -> None:
    """In one process: each trainer's own train_step on one batch of its own loader, interleaved over rounds."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    base = Path(os.environ["nnUNet_preprocessed"], DATASET)
    names = [ARMS[a].base for a in args.arms] + [p.base for p in needed_pretrainings(args)]
    steps = {}
    for name in names:
        plans = {**load_json(base / "nnUNetPlans.json"), "continue_training": False}  # as nnUNetv2_train passes it
        trainer = find_trainer_class(name)(plans=plans, configuration=CONFIGURATION, fold=0,
                                           dataset_json=load_json(base / "dataset.json"), device=device)
        trainer.initialize()
        trainer.dataloader_train, trainer.dataloader_val = trainer.get_dataloaders()
        trainer.on_train_epoch_start()
        batch = next(trainer.dataloader_train)
        steps[name] = (trainer, batch)
        trainer.train_step(batch)  # warm-up
    times = {name: [] for name in names}
    for _ in range(args.timing_rounds):
        for name, (trainer, batch) in steps.items():
            sync()
            start = time.perf_counter()
            trainer.train_step(batch)
            sync()
            times[name].append(time.perf_counter() - start)
    result = {"machine": machine_info(args.device), "rounds": args.timing_rounds, "step_seconds": {
        n: float(np.median(t)) for n, t in times.items()}, "all_seconds": times,
        "batch_size": {n: int(s[0].batch_size) for n, s in steps.items()}}
    (args.work / "step_times.json").write_text(json.dumps(result, indent=1))


def time_arms(args, env: dict) -> None:
    if not (args.work / "step_times.json").is_file():
        run([sys.executable, __file__, "--time_worker", "--device", args.device, "--protocol", args.protocol,
             "--arms", ",".join(args.arms), "--work", str(args.work),
             "--timing_rounds", str(args.timing_rounds)],
            dict(env, nnUNet_results=str(args.work / "timing_results"), nnUNet_n_proc_DA="0",
                 PYTHONPATH=os.pathsep.join(p for p in [str(HERE), env.get("PYTHONPATH")] if p)),
            args.work / "logs" / "time.log")
    measured = json.loads((args.work / "step_times.json").read_text())
    missing = [a for a in args.arms if ARMS[a].base not in measured["step_seconds"]]
    if missing:
        sys.exit(f"{args.work / 'step_times.json'} has no step time for {missing}: delete it to time all arms again.")
    settings, budget = args.settings, {"iterations_per_epoch": {}, "total_iterations": {}}
    step = dict(measured["step_seconds"])
    for arm in [ARMS[a] for a in args.arms if ARMS[a].same_network and ARMS[a].scratch in args.arms]:
        step[arm.base] = step[ARMS[arm.scratch].base] = (step[arm.base] + step[ARMS[arm.scratch].base]) / 2
    for arm in [ARMS[a] for a in args.arms] + needed_pretrainings(args):
        seconds = settings["pretrain_seconds"] if arm in PRETRAININGS.values() else settings["seconds_per_arm"]
        per_epoch = max(1, round(seconds / step[arm.base] / settings["epochs"]))
        budget["iterations_per_epoch"][arm.trainer] = per_epoch
        budget["total_iterations"][arm.trainer] = per_epoch * settings["epochs"]
    budget.update(epochs=settings["epochs"], val_iterations=settings["val_iterations"], settings=settings,
                  step_seconds=measured["step_seconds"], budget_step_seconds=step, machine=measured["machine"])
    path = args.work / "budget.json"
    if path.is_file() and json.loads(path.read_text())["iterations_per_epoch"] != budget["iterations_per_epoch"]:
        sys.exit(f"{path} holds another budget (other settings or step times): runs already trained with it would "
                 f"not be comparable. Use another --work, or delete {path} and the runs.")
    path.write_text(json.dumps(budget, indent=1))
    for arm, n in budget["total_iterations"].items():
        print(f"{arm}: {n} iterations", flush=True)


# ----- stages 3 and 4: nnU-Net's own command line --------------------------------------------------------------------
def train(args, env: dict, trainer: str, fold: int, results: Path, log: Path) -> None:
    folder = trainer_folder(results, trainer, fold)
    if (folder / "validation" / "summary.json").is_file() or (folder / "checkpoint_final.pth").is_file() and \
            trainer in [p.trainer for p in PRETRAININGS.values()]:
        return
    resume = ["--c"] if (folder / "checkpoint_latest.pth").is_file() or (folder / "checkpoint_final.pth").is_file() \
        else []
    run(["nnUNetv2_train", "4", CONFIGURATION, str(fold), "-tr", trainer, "-device", args.device] + resume,
        dict(env, nnUNet_results=str(results)), log)


def pretrain(args, env: dict) -> None:
    for key in sorted({ARMS[a].pretraining for a in args.arms} - {None}):
        train(args, dict(env, LABEL_EFFICIENCY_SEED="0"), PRETRAININGS[key].trainer, 0,
              args.work / "results" / "pretraining", args.work / "logs" / f"pretrain_{key}.log")


def runs(args, env: dict) -> None:
    for fraction, seed, arm in planned_runs(args):
        spec = ARMS[arm]
        run_env = dict(env, LABEL_EFFICIENCY_SEED=str(seed))
        if spec.pretraining:
            run_env["nnUNet_MAE_pretrained"] = str(pretrained_checkpoint(args, spec.pretraining))
        train(args, run_env, spec.trainer, FRACTIONS[fraction][0], args.work / "results" / f"seed{seed}",
              args.work / "logs" / f"{arm}_{fraction[:-1]}pct_seed{seed}.log")
        print(f"done: {arm} {fraction} seed {seed}", flush=True)
        write_report(collect(args), args.out)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    env = environment(args)
    if args.time_worker:
        time_worker(args)
        return 0
    stages = args.stages.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    if "prepare" in stages:
        prepare(args, env)
    if "time" in stages:
        time_arms(args, env)
    if "pretrain" in stages:
        pretrain(args, env)
    if "runs" in stages:
        runs(args, env)
    if "report" in stages:
        write_report(collect(args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
