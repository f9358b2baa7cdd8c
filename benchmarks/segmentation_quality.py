"""Segmentation quality at equal budgets on Hippocampus: ViT from scratch, ViT + MAE, ViT + GMIM (and, with
--arms, nnU-Net's CNN and Primus-S), through nnU-Net's own command line.

Split: fold 0 of nnU-Net's default 5-fold split (seed 12345): 160 training, 40 validation cases. Pre-training
uses fold `all` images without labels (the 40 validation images included, as SelfMedMAE's self-pre-training
on the training set does; their labels are never seen). Dice: nnU-Net's final validation (sliding window, mirroring)
on the 40 validation cases. Budgets: benchmarks/trainers/benchmark_trainers.py.

    python benchmarks/segmentation_quality.py --protocol cpu --device cpu      # about 1.5 h on 2 CPU cores
    python benchmarks/segmentation_quality.py --protocol gpu --device cuda --arms cnn,primus,scratch,mae,gmim

Writes results.json, results.md and learning_curves.png into --out; arms that earlier invocations wrote into the
same --out (same protocol and device) are kept, so the arms can run one invocation at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import (DEFAULT_DATA, machine_info, prepare_workspace, run_logged as run, trainer_folder,
                    workspace_environment)

HERE = Path(__file__).resolve().parent
ARMS = {  # arm -> (pre-training trainer or None, segmentation trainer)
    "cnn": (None, "nnUNetTrainer_bench{p}"),
    "primus": (None, "nnUNet_Primus_S_Trainer_bench{p}"),
    "scratch": (None, "nnUNetTrainerViT_bench{p}"),
    "mae": ("nnUNetTrainerMAEPretrain_bench{p}", "nnUNetTrainerMAEFinetune_bench{p}"),
    "gmim": ("nnUNetTrainerGMIMPretrain_bench{p}", "nnUNetTrainerGMIMFinetune_bench{p}"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--arms", default="scratch,mae,gmim", help=f"comma-separated, from {sorted(ARMS)}")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet_mae_quality"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "segmentation_quality")
    args = parser.parse_args(argv)
    arms = args.arms.split(",")
    env = workspace_environment(args.work)
    logs = args.work / "logs"
    prepare_workspace(args.data, args.work, env)
    args.out.mkdir(parents=True, exist_ok=True)

    results = {"protocol": args.protocol, "device": args.device, "date": time.strftime("%Y-%m-%d"),
               "machine": machine_info(args.device), "arms": {}}
    previous = args.out / "results.json"
    if previous.is_file():  # arms run by earlier invocations into the same --out are kept (same protocol/device)
        earlier = json.loads(previous.read_text())
        if (earlier.get("protocol"), earlier.get("device")) == (args.protocol, args.device):
            results["arms"] = {a: e for a, e in earlier["arms"].items() if a not in arms}
    for arm in arms:
        results["arms"][arm] = entry = run_arm(arm, args, env, logs)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        print(f"{arm}: mean Dice {entry['mean_dice']:.4f} ({entry['train_seconds']:.0f} s)", flush=True)
    write_report(results, args.out)
    return 0


def run_arm(arm: str, args, env: dict, logs: Path) -> dict:
    """Pre-train (once, kept across invocations) and train one arm; its Dice from nnU-Net's final validation."""
    from nnunet_mae.transfer.checkpoint_io import safe_torch_load

    pretrainer, trainer = (t.format(p=args.protocol) if t else None for t in ARMS[arm])
    entry = {"trainer": trainer, "pretrainer": pretrainer}
    if pretrainer and not (trainer_folder(env["nnUNet_results"], pretrainer, "all") / "checkpoint_final.pth").is_file():
        entry["pretrain_seconds"] = run(["nnUNetv2_train", "4", "3d_fullres", "all", "-tr", pretrainer,
                                         "-device", args.device], env, logs / f"{arm}_pretrain.log")
    entry["train_seconds"] = run(["nnUNetv2_train", "4", "3d_fullres", "0", "-tr", trainer, "-device",
                                  args.device], env, logs / f"{arm}_train.log")
    folder = trainer_folder(env["nnUNet_results"], trainer, "0")
    summary = json.loads((folder / "validation" / "summary.json").read_text())
    entry["dice"] = {label: summary["mean"][label]["Dice"] for label in summary["mean"]}
    entry["mean_dice"] = summary["foreground_mean"]["Dice"]
    logging = safe_torch_load(folder / "checkpoint_final.pth")["logging"]
    entry["pseudo_dice_per_epoch"] = [float(x) for x in logging["mean_fg_dice"]]
    return entry


def write_report(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    machine = results.get("machine", {})
    lines = [f"Protocol {results['protocol']} on {results['device']}, {results['date']}; CPU "
             f"{machine.get('cpu', 'not recorded')} (bf16: {machine.get('cpu_bf16', 'not recorded')}; trainers: "
             f"{machine.get('auto_precision', 'not recorded')}).", "",
             "| arm | pre-training [s] | fine-tuning [s] | Dice label 1 | Dice label 2 | mean Dice |",
             "|---|---|---|---|---|---|"]
    for arm, e in results["arms"].items():
        pre = f"{e['pretrain_seconds']:.0f}" if "pretrain_seconds" in e else ("reused" if e["pretrainer"] else "-")
        lines.append(f"| {arm} | {pre} | {e['train_seconds']:.0f} | {e['dice']['1']:.4f} | {e['dice']['2']:.4f} | "
                     f"{e['mean_dice']:.4f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(7, 4))
    for arm, e in results["arms"].items():
        ax.plot(range(len(e["pseudo_dice_per_epoch"])), e["pseudo_dice_per_epoch"], marker="o", label=arm)
    ax.set_xlabel("epoch")
    ax.set_ylabel("pseudo Dice (validation crops)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=100)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
