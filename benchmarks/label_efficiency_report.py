"""The table, the gains and the learning curves of benchmarks/label_efficiency.py, from whatever runs have finished."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from common import DATASET
from label_efficiency_protocol import ARMS, FRACTIONS, PRETRAININGS, planned_runs, pretrained_checkpoint, run_folder

from nnunet_mae.transfer.checkpoint_io import safe_torch_load


def training_log(checkpoint: Path) -> dict:
    logging = safe_torch_load(checkpoint)["logging"]
    seconds = [e - s for s, e in zip(logging["epoch_start_timestamps"], logging["epoch_end_timestamps"])]
    return {"epoch_seconds": seconds, "train_seconds": float(sum(seconds)),
            "pseudo_dice": [float(x) for x in logging.get("mean_fg_dice", [])],
            "val_losses": [float(x) for x in logging["val_losses"]]}


def collect(args) -> dict:
    work = args.work
    budget = json.loads((work / "budget.json").read_text()) if (work / "budget.json").is_file() else {}
    results = {"protocol": args.protocol, "device": args.device, "budget": budget, "pretraining": {}, "runs": []}
    uses = {}
    for fraction, seed, arm in planned_runs(args):
        if ARMS[arm].pretraining:
            uses[ARMS[arm].pretraining] = uses.get(ARMS[arm].pretraining, 0) + 1
    for key, count in uses.items():
        checkpoint = pretrained_checkpoint(args, key)
        if checkpoint.is_file():
            log = training_log(checkpoint)
            results["pretraining"][key] = {"trainer": PRETRAININGS[key].trainer, "fine_tuning_runs": count,
                                           "iterations": budget.get("total_iterations", {}).get(
                                               PRETRAININGS[key].trainer), **log}
    for fraction, seed, arm in planned_runs(args):
        folder = run_folder(args, fraction, seed, arm)
        summary = folder / "validation" / "summary.json"
        if not summary.is_file():
            continue
        mean = json.loads(summary.read_text())
        results["runs"].append({
            "arm": arm, "fraction": fraction, "seed": seed, "trainer": ARMS[arm].trainer,
            "training_cases": fraction_cases(args, fraction),
            "iterations": budget["total_iterations"][ARMS[arm].trainer],
            "iterations_per_epoch": budget["iterations_per_epoch"][ARMS[arm].trainer],
            "dice": {label: mean["mean"][label]["Dice"] for label in mean["mean"]},
            "mean_dice": mean["foreground_mean"]["Dice"], **training_log(folder / "checkpoint_final.pth")})
    return results


def fraction_cases(args, fraction: str) -> int:
    splits = json.loads((args.work / "preprocessed" / DATASET / "splits_final.json").read_text())
    return len(splits[FRACTIONS[fraction][0]]["train"])


def pseudo_dice_at(run: dict, iterations: int) -> float | None:
    """nnU-Net's online pseudo Dice at the last epoch that ended within `iterations` training iterations."""
    epochs = iterations // run["iterations_per_epoch"]
    return run["pseudo_dice"][min(epochs, len(run["pseudo_dice"])) - 1] if epochs >= 1 else None


def fraction_table(results: dict, fraction: str) -> list[str]:
    runs = [r for r in results["runs"] if r["fraction"] == fraction]
    if not runs:
        return [f"No finished run at {fraction} yet."]
    fewest = min(r["iterations"] for r in runs)
    lines = [f"**{fraction} of the labels** ({runs[0]['training_cases']} training cases); equal-iteration column: "
             f"nnU-Net's online pseudo Dice after {fewest} iterations (the fewest any arm had), from the same runs.",
             "",
             "| arm | iterations | training [s] | pre-training [s], amortised | Dice per seed | mean Dice | "
             "pseudo Dice at equal iterations |", "|---|---|---|---|---|---|---|"]
    for arm in dict.fromkeys(r["arm"] for r in runs):
        mine = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
        pre = results["pretraining"].get(ARMS[arm].pretraining or "", {})
        share = f"{pre['train_seconds'] / pre['fine_tuning_runs']:.0f}" if pre else "-"
        equal_it = [pseudo_dice_at(r, fewest) for r in mine]
        lines.append(f"| {ARMS[arm].title} | {mine[0]['iterations']} | "
                     f"{np.mean([r['train_seconds'] for r in mine]):.0f} | {share} | "
                     + ", ".join(f"{r['mean_dice']:.3f}" for r in mine)
                     + f" | **{np.mean([r['mean_dice'] for r in mine]):.3f}** | "
                     + ", ".join("-" if v is None else f"{v:.3f}" for v in equal_it) + " |")
    return lines + [""] + gains(runs)


def gains(runs: list[dict]) -> list[str]:
    """Each pre-trained arm against its scratch arm: gain of the means, and the spread between seeds."""
    lines = []
    for arm, spec in ARMS.items():
        mine = [r["mean_dice"] for r in runs if r["arm"] == arm]
        theirs = [r["mean_dice"] for r in runs if r["arm"] == spec.scratch]
        if spec.scratch and mine and theirs:
            gain = np.mean(mine) - np.mean(theirs)
            if min(len(mine), len(theirs)) < 2:
                verdict = "one seed: the spread between seeds is not measured"
            else:
                spread = max(np.ptp(mine), np.ptp(theirs))
                verdict = (f"largest seed spread {spread:.3f}: gain "
                           f"{'more than' if gain > spread else 'not more than'} the spread")
            lines.append(f"- {spec.title} − {ARMS[spec.scratch].title}: {gain:+.3f} mean Dice ({len(mine)} vs "
                         f"{len(theirs)} seed(s)); {verdict}.")
    return lines


def write_report(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    machine = results["budget"].get("machine", {})
    settings = results["budget"].get("settings", {})
    lines = [f"Protocol {results['protocol']} on {results['device']}; CPU {machine.get('cpu', '?')} "
             f"({machine.get('cpu_count', '?')} cores; bf16: {machine.get('cpu_bf16', '?')}; nnunet_mae trainers: "
             f"{machine.get('auto_precision', '?')}); torch {machine.get('torch', '?')}.",
             f"Equal time: {settings.get('seconds_per_arm', '?')} s of training per fine-tuning run, "
             f"{settings.get('epochs', '?')} epochs; step times measured side by side: "
             + ", ".join(f"{k} {v:.2f} s" for k, v in results["budget"].get("step_seconds", {}).items()) + ".", ""]
    for key, pre in results["pretraining"].items():
        lines.append(f"Pre-training {PRETRAININGS[key].title}: {pre['iterations']} iterations, "
                     f"{pre['train_seconds']:.0f} s, shared by {pre['fine_tuning_runs']} fine-tuning runs.")
    for fraction in FRACTIONS:
        lines += ["", *fraction_table(results, fraction)]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(results, out / "learning_curves.png")
    print("\n".join(lines), flush=True)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FRACTIONS), figsize=(12, 4.5), sharey=True)
    colours = dict(zip(ARMS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, fraction in zip(axes, FRACTIONS):
        for r in (r for r in results["runs"] if r["fraction"] == fraction):
            ax.plot(np.cumsum(r["epoch_seconds"]), r["pseudo_dice"], marker="o", color=colours[r["arm"]],
                    linestyle="-" if r["seed"] == 0 else "--",
                    label=f"{ARMS[r['arm']].title}, seed {r['seed']}")
        ax.set_title(f"{fraction} of the labels")
        ax.set_xlabel("training seconds")
        if ax.lines:
            ax.legend(fontsize=7)
    axes[0].set_ylabel("pseudo Dice (nnU-Net's online validation)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
