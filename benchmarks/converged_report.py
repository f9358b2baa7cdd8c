"""The tables, the gains and the curves of benchmarks/converged.py, from whatever has finished.

Writes to --out: results.json (one entry per finished run at the measured budget: `arm`, `backbone`, `pretrained`,
`seed`, `iterations`, `dice`, `converged`, and what else the run recorded), protocol.json (the budgets, the probe
curves, the stopping-signal check, the CPU of every stage), results.md and learning_curves.png. What --work no longer
holds (a lost machine) is kept from what has landed in --out: its runs, probe curves and checks.
"""

from __future__ import annotations

import json
from pathlib import Path

from converged import (BACKBONES, REFERENCE_ARM, arm_name, budget_file, convergence_rule, criterion_curve,
                       curve_name, landed, pretrain_folder, pretraining_id, quarter_is_flat, reference_arm_name,
                       reference_folder, run_folder, scout_file, snapshots)

from nnunet_mae.probing.history import ProbeHistory
from nnunet_mae.transfer.checkpoint_io import safe_torch_load


def training_log(checkpoint: Path) -> dict:
    logging = safe_torch_load(checkpoint)["logging"]
    seconds = [e - s for s, e in zip(logging["epoch_start_timestamps"], logging["epoch_end_timestamps"])]
    return {"epochs": len(seconds), "train_minutes": sum(seconds) / 60,
            "ema_fg_dice": [float(x) for x in logging["ema_fg_dice"]]}


def recorded(args, log: str) -> dict:
    path = args.work / "records" / f"{log}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def cpu_of(record: dict) -> str | None:
    return record.get("machine", {}).get("cpu")


def machine(args, log: str) -> str | None:
    return cpu_of(recorded(args, log))


def criterion(args, name: str) -> dict:
    """The convergence criterion the scout used (the options of this invocation if it has not finished)."""
    if scout_file(args, name).is_file():
        return json.loads(scout_file(args, name).read_text())["criterion"]
    return convergence_rule(args)


def run_entry(args, name: str, folder: Path, log: str, stage: str = "runs") -> dict | None:
    summary = folder / "validation" / "summary.json"
    if not summary.is_file():
        return None
    scores, log_values = json.loads(summary.read_text()), training_log(folder / "checkpoint_final.pth")
    run = recorded(args, log)  # the machine it finished on, the snapshot it started from
    ema, rule = log_values["ema_fg_dice"], criterion(args, name)
    per_epoch = next(iter(json.loads(budget_file(args, stage, name).read_text())["iterations_per_epoch"].values()))
    return {"dice": scores["foreground_mean"]["Dice"],
            "dice_per_label": {label: scores["mean"][label]["Dice"] for label in scores["mean"]},
            "iterations": log_values["epochs"] * per_epoch,
            "converged": quarter_is_flat(criterion_curve(ema, rule), len(ema), rule["tolerance"], rule["min_dice"]),
            "train_minutes": log_values["train_minutes"], "ema_fg_dice": ema, "cpu": cpu_of(run),
            **{k: v for k, v in run.items() if k in ("snapshot", "pretraining")}}


def collect_runs(args) -> list[dict]:
    """Every finished run: from --work, else as it landed in --out."""
    earlier, runs = {(r["arm"], r["seed"]): r for r in landed(args)[0]}, []

    def add(arm: str, backbone: str, pretrained: bool, seed: int, entry: dict | None) -> None:
        if entry is not None:
            runs.append({"arm": arm, "backbone": backbone, "pretrained": pretrained, "seed": seed, **entry})
        elif (arm, seed) in earlier:
            runs.append(earlier[arm, seed])

    for name in BACKBONES:
        for seed in range(args.seeds):
            for pretrained in (False, True):
                add(arm_name(name, pretrained), name, pretrained, seed, run_entry(
                    args, name, run_folder(args, name, pretrained, seed), f"{arm_name(name, pretrained)}_seed{seed}"))
            # nnU-Net's CNN from scratch at the training time of this backbone's scratch arm
            add(reference_arm_name(name), REFERENCE_ARM, False, seed, run_entry(
                args, name, reference_folder(args, name, seed), f"reference_{name}_seed{seed}", stage="reference"))
    return runs


def probe_curve(args, name: str) -> dict | None:
    final = pretrain_folder(args, name) / "checkpoint_final.pth"
    latest = pretrain_folder(args, name) / "checkpoint_latest.pth"
    checkpoint = final if final.is_file() else latest if latest.is_file() else None
    if checkpoint is None:
        return None
    probe = ProbeHistory.from_dict(safe_torch_load(checkpoint).get("probe"))
    return {"finished": checkpoint == final, "cpu": machine(args, f"pretrain_{name}"), "noise": probe.noise,
            "stop_epoch": probe.stop_epoch,
            "records": [{"epoch": r.epoch, "iterations": r.iterations, "minutes": r.train_seconds / 60,
                         "mean_dice": r.mean} for r in probe.records]}


def stopping_check(args, name: str, runs: list[dict], curve: dict | None) -> list[dict]:
    """Fine-tuned Dice from the early, plateau and late snapshots of one pre-training, next to the probe at each:
    early and late fine-tuned with seed 0, the plateau by the MAE arm's run of the lowest seed that started from
    this pre-training (seed 0 unless the pre-training was lost and run again)."""
    chosen = snapshots(args, name)
    if chosen is None or curve is None:
        return []
    this_pretraining = pretraining_id(args, chosen["plateau"])
    rows = []
    for which, snapshot in chosen.items():
        epoch = int(snapshot.stem.split("_")[1]) - 1
        probe = next((r["mean_dice"] for r in curve["records"] if r["epoch"] == epoch), None)
        if which == "plateau":
            mine = [r for r in runs if r["arm"] == arm_name(name, True) and r.get("pretraining") == this_pretraining]
            run = min(mine, key=lambda r: r["seed"], default=None)
            dice, seed = (run["dice"], run["seed"]) if run else (None, None)
        else:
            entry = run_entry(args, name, run_folder(args, name, True, 0, snapshot), f"check_{name}_{snapshot.stem}")
            dice, seed = entry["dice"] if entry else None, 0
        rows.append({"snapshot": which, "epoch": epoch + 1, "probe": probe, "fine_tuned_dice": dice, "seed": seed})
    return rows


def ranks_agree(rows: list[dict]) -> bool | None:
    """Whether ordering the snapshots by probe gives the order by fine-tuned Dice; None until all have finished."""
    distinct = {r["snapshot"]: r for r in rows}.values()
    if len(distinct) < 2 or any(r["probe"] is None or r["fine_tuned_dice"] is None for r in distinct):
        return None
    return [r["snapshot"] for r in sorted(distinct, key=lambda r: r["probe"])] == \
        [r["snapshot"] for r in sorted(distinct, key=lambda r: r["fine_tuned_dice"])]


def gain_line(name: str, runs: list[dict]) -> str:
    arms = {p: [r["dice"] for r in runs if r["arm"] == arm_name(name, p)] for p in (False, True)}
    if not arms[False] or not arms[True]:
        return f"- {BACKBONES[name].title}: not both arms finished yet."
    gain = sum(arms[True]) / len(arms[True]) - sum(arms[False]) / len(arms[False])
    spread = max(max(v) - min(v) for v in arms.values())
    verdict = "more than the spread" if abs(gain) > spread and min(map(len, arms.values())) > 1 else \
        "not more than the spread (or one seed)"
    return (f"- {BACKBONES[name].title}: MAE − scratch {gain:+.3f} mean Dice ({len(arms[True])} vs "
            f"{len(arms[False])} seeds), largest seed spread {spread:.3f}: {verdict}.")


def reference_line(name: str, runs: list[dict]) -> str:
    """nnU-Net's CNN from scratch against the backbone's arms, at the training time of its scratch arm."""
    def mean(arm: str) -> str:
        dice = [r["dice"] for r in runs if r["arm"] == arm]
        return f"{sum(dice) / len(dice):.3f} ({len(dice)} seeds)" if dice else "not yet"

    cnn, scratch, mae = mean(reference_arm_name(name)), mean(arm_name(name, False)), mean(arm_name(name, True))
    return (f"- nnU-Net's default CNN from scratch in the training time of the {BACKBONES[name].title} scratch arm: "
            f"{cnn}; {name} scratch {scratch}, {name} + MAE {mae} (pre-training time not counted).")


def references(args) -> dict:
    """Each backbone's reference budget (epochs, the scratch arm's epochs it matches, the step times)."""
    return {name: json.loads(budget_file(args, "reference", name).read_text()) for name in BACKBONES
            if budget_file(args, "reference", name).is_file()}


def ema_at(run: dict, fraction: float) -> float:
    """nnU-Net's EMA pseudo Dice of a run after `fraction` of its epochs: how far each arm is on a shorter budget."""
    ema = run["ema_fg_dice"]
    return ema[max(1, round(len(ema) * fraction)) - 1]


def fmt(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "not yet"


def markdown(protocol: dict, runs: list[dict]) -> list[str]:
    lines = ["| backbone | scout: epochs × iterations | converged (the curve it read: `--curve`) | CPU-minutes | CPU |",
             "|---|---|---|---|---|"]
    for name, scout in protocol["scouts"].items():
        curve = curve_name(scout.get("criterion", {}))
        lines.append(f"| {BACKBONES[name].title} | {scout['epochs']} × {scout['iterations'] // scout['epochs']} | "
                     f"{scout['converged']} ({curve}) | {scout['train_minutes']:.0f} | {scout['cpu']} |")
    for name, curve in protocol["probe_curves"].items():
        for which, shown in [("earlier, lost with its machine", c) for c in protocol.get("earlier_probe_curves", {})
                             .get(name, [])] + [("finished" if curve and curve["finished"] else "running", curve)]:
            if shown:
                points = ", ".join(f"{r['iterations']}: {r['mean_dice']:.3f}" for r in shown["records"])
                lines += ["", f"Probe of the {BACKBONES[name].title} pre-training (iterations: mean Dice; noise "
                              f"{fmt(shown['noise'])}; stopping signal after epoch {shown['stop_epoch']}; {which}): "
                              f"{points}"]
    lines += ["", "| arm | seeds | iterations | Dice per seed | mean | converged | EMA pseudo Dice after ¼ / ½ of "
                  "the iterations (mean) | train minutes | pre-training minutes, amortised |",
              "|---|---|---|---|---|---|---|---|---|"]
    for arm in dict.fromkeys(r["arm"] for r in runs):
        mine = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
        curve = protocol["probe_curves"].get(mine[0]["backbone"]) if mine[0]["pretrained"] else None
        share = curve["records"][-1]["minutes"] / len(mine) if curve and curve["records"] else None
        per_seed = ", ".join(f"{r['dice']:.3f}" for r in mine)
        mean, minutes = sum(r["dice"] for r in mine) / len(mine), sum(r["train_minutes"] for r in mine) / len(mine)
        converged = f"{sum(r['converged'] for r in mine)}/{len(mine)}"
        amortised = f"{share:.0f}" if share is not None else "-"
        early = " / ".join(f"{sum(ema_at(r, f) for r in mine) / len(mine):.3f}" for f in (0.25, 0.5))
        lines.append(f"| {arm} | {len(mine)} | {mine[0]['iterations']} | {per_seed} | {mean:.3f} | {converged} | "
                     f"{early} | {minutes:.0f} | {amortised} |")
    arms = {r["arm"] for r in runs}
    lines += [""] + [gain_line(name, runs) for name in BACKBONES
                     if {arm_name(name, False), arm_name(name, True)} & arms]
    lines += [reference_line(name, runs) for name in BACKBONES if reference_arm_name(name) in arms]
    for name, check in protocol["stopping_check"].items():
        lines += ["", f"Stopping-signal check, {BACKBONES[name].title}: "
                      + "; ".join(f"{r['snapshot']} (epoch {r['epoch']}): probe {fmt(r['probe'])}, fine-tuned "
                                  f"{fmt(r['fine_tuned_dice'])} (seed {r.get('seed', 0)})" for r in check["snapshots"])
                  + f"; the probe ranks them as fine-tuning does: {check['ranks_agree']}"]
    return lines


def plot(protocol: dict, runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, scout in protocol["scouts"].items():
        per_epoch = scout["iterations"] // scout["epochs"]
        left.plot([per_epoch * (i + 1) for i in range(len(scout["ema_fg_dice"]))], scout["ema_fg_dice"], "k:",
                  label=f"{name} scout")
    for r in runs:
        per_epoch = r["iterations"] // len(r["ema_fg_dice"])
        scratch = r["arm"] == arm_name(r["backbone"], False)
        colour = "tab:red" if r["pretrained"] else "tab:blue" if scratch else "tab:green"
        left.plot([per_epoch * (i + 1) for i in range(len(r["ema_fg_dice"]))], r["ema_fg_dice"], color=colour,
                  alpha=0.6, label=f"{r['arm']} seed {r['seed']}")
    left.set(xlabel="fine-tuning iterations", ylabel="EMA pseudo Dice (nnU-Net)", title="learning curves")
    left.legend(fontsize=6)
    for name, curve in protocol["probe_curves"].items():
        if curve:
            base = [r for r in curve["records"] if r["epoch"] < 0]
            trained = [r for r in curve["records"] if r["epoch"] >= 0]
            line, = right.plot([r["minutes"] for r in trained], [r["mean_dice"] for r in trained], "o-", label=name)
            for b in base:
                right.axhline(b["mean_dice"], color=line.get_color(), ls="--", label=f"{name} random init")
                if curve["noise"]:
                    right.axhspan(b["mean_dice"], b["mean_dice"] + curve["noise"], color=line.get_color(), alpha=0.1,
                                  label=f"{name}: within the probe's noise")
            stop = [r for r in trained if r["epoch"] == curve["stop_epoch"]]
            if stop:
                right.axvline(stop[0]["minutes"], color=line.get_color(), ls=":",
                              label=f"{name}: stopping signal ({stop[0]['iterations']} iterations)")
    for name, earlier in protocol.get("earlier_probe_curves", {}).items():
        for curve in earlier:
            trained = [r for r in curve["records"] if r["epoch"] >= 0]
            right.plot([r["minutes"] for r in trained], [r["mean_dice"] for r in trained], "x:", color="grey",
                       label=f"{name}: an earlier pre-training (lost with its machine)")
    right.set(xlabel="pre-training CPU-minutes", ylabel="probe mean Dice", title="probe during pre-training")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def earlier_probe_curves(earlier: dict, curves: dict) -> dict:
    """The probe curves of pre-trainings lost with their machine and run again: kept next to the new ones."""
    kept = {name: list(found) for name, found in earlier.get("earlier_probe_curves", {}).items()}
    for name, curve in curves.items():
        before = earlier.get("probe_curves", {}).get(name)
        common = min(len(before["records"]), len(curve["records"])) if curve and before else 0
        if common and before["records"][:common] != curve["records"][:common] and before not in kept.get(name, []):
            kept.setdefault(name, []).append(before)
    return kept


def write_report(args) -> dict:
    runs = collect_runs(args)
    scouts = {}
    for name in BACKBONES:
        if scout_file(args, name).is_file():
            scouts[name] = {**json.loads(scout_file(args, name).read_text()), "cpu": machine(args, f"scout_{name}")}
    earlier = landed(args)[1]
    curves = {name: probe_curve(args, name) for name in BACKBONES}
    checks = {name: stopping_check(args, name, runs, curves[name]) for name in BACKBONES}
    protocol = {"scouts": {**earlier.get("scouts", {}), **scouts},
                "probe_curves": {name: curve or earlier.get("probe_curves", {}).get(name)
                                 for name, curve in curves.items()},
                "earlier_probe_curves": earlier_probe_curves(earlier, curves),
                "references": {**earlier.get("references", {}), **references(args)},
                "stopping_check": {**earlier.get("stopping_check", {}),
                                   **{name: {"snapshots": rows, "ranks_agree": ranks_agree(rows)}
                                      for name, rows in checks.items() if rows}}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(runs, indent=1))
    (args.out / "protocol.json").write_text(json.dumps(protocol, indent=1))
    (args.out / "results.md").write_text("\n".join(markdown(protocol, runs)) + "\n")
    plot(protocol, runs, args.out / "learning_curves.png")
    print("\n".join(markdown(protocol, runs)), flush=True)
    return protocol
