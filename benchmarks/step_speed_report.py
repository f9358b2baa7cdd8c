"""The report side of benchmarks/step_speed.py: ratios between trainers and precisions, checked against the
targets; efficiency against the matmul peak; results.md and speed.png."""

from __future__ import annotations

import math
from pathlib import Path

from common import SHORT


TRAINERS = ["nnUNetTrainer", "nnUNet_Primus_S_Trainer", "nnUNetTrainerViT", "nnUNetTrainerMAEPretrain",
            "nnUNetTrainerGMIMPretrain"]
PRECISIONS = ["fp32", "bf16"]
MODES = ["network", "real"]
MODE_TITLES = {"network": "network-only (same batch, on the device)",
               "real": "real (fresh batch from nnU-Net's loader each step)"}

# Thresholds the derived ratios are checked against: (comparison, threshold, what it means). Change them here if the
# issue states other numbers; results.md prints them next to the measured values.
TARGETS = {  # from the benchmark issue
    "mae_over_vit": ("<=", 0.35, "an MAE pre-training step costs at most 0.35x a ViT fine-tuning step"),
    "vit_over_primus": ("<=", 0.8, "a ViT-S fine-tuning step costs at most 0.8x a Primus-S step"),
    "vit_over_cnn": ("<=", 0.3, "a ViT-S fine-tuning step costs at most 0.3x nnU-Net's CNN step"),
    "bf16_speedup": (">=", 1.7, "bf16 is at least 1.7x faster than fp32 on CPU (our trainers)"),
    "real_over_network": ("<=", 1.15, "data loading adds at most 15% to a step"),
}


def find_run(runs: list[dict], trainer: str, precision: str) -> dict | None:
    return next((r for r in runs if r["trainer"] == trainer and r["precision"] == precision and "error" not in r), None)


def default_precision(trainer: str, device: str) -> str:
    """The precision a trainer trains in when left alone: ours bf16; nnU-Net's fp32 on CPU, fp16 AMP on CUDA."""
    if trainer in ("nnUNetTrainer", "nnUNet_Primus_S_Trainer"):
        return "bf16" if device == "cuda" else "fp32"  # on CUDA the 'bf16' slot holds nnU-Net's own fp16 AMP
    return "bf16"


def derived_ratios(runs: list[dict], device: str) -> list[dict]:
    ratios = []

    def add(key: str, label: str, numerator: tuple[str, str], denominator: tuple[str, str], mode: str, *,
            invert: bool = False):
        a, b = find_run(runs, *numerator), find_run(runs, *denominator)
        if a is None or b is None:
            return
        value = a[mode]["median_s"] / b[mode]["median_s"]
        if invert:
            value = 1 / value
        entry = {"key": key, "label": label, "mode": mode, "value": value, "numerator": list(numerator),
                 "denominator": list(denominator)}
        if key in TARGETS:
            op, threshold, _ = TARGETS[key]
            entry["target"] = f"{op} {threshold}"
            entry["met"] = value <= threshold if op == "<=" else value >= threshold
        ratios.append(entry)

    vit, mae = "nnUNetTrainerViT", "nnUNetTrainerMAEPretrain"
    for mode in MODES:
        for p in PRECISIONS:
            add("mae_over_vit", f"MAE step / ViT step ({p})", (mae, p), (vit, p), mode)
            add("gmim_over_vit", f"GMIM step / ViT step ({p})", ("nnUNetTrainerGMIMPretrain", p), (vit, p), mode)
        for other, key, short in (("nnUNet_Primus_S_Trainer", "vit_over_primus", "Primus-S"),
                                  ("nnUNetTrainer", "vit_over_cnn", "CNN")):
            if device == "cuda":  # nnU-Net's trainers ran once, in their own fp16 AMP (the 'bf16' slot)
                add(key, f"ViT step (bf16) / {short} step (nnU-Net's own fp16 AMP)", (vit, "bf16"), (other, "bf16"),
                    mode)
                continue
            add(key, f"ViT step / {short} step (both fp32)", (vit, "fp32"), (other, "fp32"), mode)
            add(key, f"ViT step / {short} step (both bf16; theirs by external autocast)", (vit, "bf16"),
                (other, "bf16"), mode)
            add(key, f"ViT step (bf16) / {short} step as nnU-Net trains it (fp32 on CPU)", (vit, "bf16"),
                (other, default_precision(other, device)), mode)
        for trainer in TRAINERS:
            ours = hasattr_autocast(trainer)
            add("bf16_speedup" if ours else "bf16_speedup_external",
                f"bf16 speed-up over fp32, {SHORT.get(trainer, trainer)} (fp32 time / bf16 time"
                + ("" if ours else ", bf16 by external autocast") + ")", (trainer, "fp32"), (trainer, "bf16"), mode)
    for run in runs:
        if "error" in run:
            continue
        value = run["real"]["median_s"] / run["network"]["median_s"]
        op, threshold, _ = TARGETS["real_over_network"]
        ratios.append({"key": "real_over_network", "mode": "real / network-only", "value": value,
                       "label": f"real step / network-only step, {SHORT.get(run['trainer'], run['trainer'])} "
                                f"({run['precision']})", "target": f"{op} {threshold}", "met": value <= threshold})
    return ratios


def hasattr_autocast(trainer: str) -> bool:
    return trainer not in ("nnUNetTrainer", "nnUNet_Primus_S_Trainer")


def add_efficiency(results: dict) -> None:
    """Achieved TFLOP/s (FLOPs of one step / median network-only step) and % of the torch.mm reference."""
    peak = results["matmul_peak"]
    for run in results["runs"]:
        if "error" in run or "flops_per_step" not in run:
            continue
        reference = peak["bf16" if run["precision"] == "bf16" else "fp32"]["tflops"]
        for mode in MODES:
            achieved = run["flops_per_step"] / run[mode]["median_s"] / 1e12
            run[mode]["achieved_tflops"] = achieved
            run[mode]["percent_of_matmul_peak"] = 100 * achieved / reference
        if "encoder" in run:
            enc = run["encoder"]
            enc["achieved_tflops"] = enc["flops"] / enc["median_s"] / 1e12
            enc["percent_of_matmul_peak"] = 100 * enc["achieved_tflops"] / reference
            enc["flops_share_of_step"] = enc["flops"] / run["flops_per_step"]
            enc["time_share_of_network_only_step"] = enc["median_s"] / run["network"]["median_s"]


def fmt(value, spec: str = ".3f", missing: str = "-") -> str:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def write_markdown(results: dict) -> str:
    lines = _header_lines(results)
    for mode in MODES:
        lines += _mode_table(results, mode)
    lines += _encoder_table(results) + _ratio_tables(results) + ["## Notes", ""]
    lines += [f"- {n}" for n in _notes(results["machine"]["device"])]
    return "\n".join(lines) + "\n"


def _header_lines(results: dict) -> list[str]:
    m, s = results["machine"], results["settings"]
    hardware = m.get("gpu") or f"{m.get('cpu')} ({m['cpu_count']} cores; {', '.join(m.get('cpu_flags', []))})"
    device = results["runs"][0]["device"] if results["runs"] and "device" in results["runs"][0] else m["device"]
    load = ", ".join(f"{x:.2f}" for x in results["load_average_at_start"])
    lines = [f"# Training-step speed, {s['dataset']} {s['configuration']}", "",
             f"{results['date']} on {hardware}; torch {m['torch']}, {s['torch_threads']} torch thread(s), device "
             f"{device}. Batch {s['batch_size']}, fold `all`, nnUNet_n_proc_DA={s['nnUNet_n_proc_DA']}, "
             f"nnUNet_compile={s['nnUNet_compile']}. Load average at start: {load}.", "",
             f"Command: `{results['command']}` ({results['total_seconds']:.0f} s).", "",
             f"Each cell: median seconds per `train_step` over the timed steps (count in brackets; up to {s['steps']} "
             f"after {s['warmup']} warm-up steps, fewer where a phase would pass {s['max_seconds']:.0f} s). FLOPs: "
             "one training step (forward + backward; matmul, convolution and attention only) counted by "
             "`torch.utils.flop_counter.FlopCounterMode`; % peak: achieved FLOP/s over the measured `torch.mm` "
             "4096x4096 rate of the same precision.", ""]
    if results["load_average_at_start"][0] > 0.5 * m["cpu_count"] and m["device"] == "cpu":
        lines += [f"**Warning: the machine was busy at the start (load {load} on {m['cpu_count']} cores); "
                  "the timings are not trustworthy.**", ""]
    peak = results["matmul_peak"]
    return lines + ["torch.mm reference: " + ", ".join(f"{p} {peak[p]['tflops']:.3f} TFLOP/s" for p in PRECISIONS)
                    + ".", ""]


def _mode_table(results: dict, mode: str) -> list[str]:
    m = results["machine"]
    memory = "peak memory [MiB] (torch.cuda.max_memory_allocated)" if m["device"] == "cuda" else \
        "RSS before 1st step / peak RSS [MiB] (measuring process)"
    lines = [f"## {MODE_TITLES[mode]}", "",
             f"| trainer | precision | s / step | samples / s | {'data wait [s] | ' if mode == 'real' else ''}"
             f"GFLOP / step | TFLOP/s | % peak | {memory} |",
             "|---|---|---|---|" + ("---|" if mode == "real" else "") + "---|---|---|---|"]
    for run in results["runs"]:
        name = SHORT.get(run["trainer"], run["trainer"])
        if "error" in run:
            lines.append(f"| {name} | {run['precision']} | failed: {run['error']} |")
            continue
        r = run[mode]
        precision = run["precision"] + (" (external autocast)" if run["external_autocast"] else "")
        if m["device"] == "cuda" and not hasattr_autocast(run["trainer"]):
            precision = "fp16 AMP (nnU-Net's own)"
        mem = fmt(r.get("peak_memory_mb"), ".0f") if m["device"] == "cuda" else \
            f"{fmt(run['rss_before_first_step_mb'], '.0f')} / {fmt(run['peak_rss_mb'], '.0f')}"
        lines.append(
            f"| {name} | {precision} | {r['median_s']:.3f} ({r['steps_timed']}) | "
            f"{run['batch_size'] / r['median_s']:.2f} | "
            + (f"{r['median_data_wait_s']:.3f} | " if mode == "real" else "")
            + f"{fmt(run.get('flops_per_step', None) and run['flops_per_step'] / 1e9, '.0f')} | "
            f"{fmt(r.get('achieved_tflops'))} | {fmt(r.get('percent_of_matmul_peak'), '.1f')} | {mem} |")
    return lines + [""]


def _encoder_table(results: dict) -> list[str]:
    encoders = [r for r in results["runs"] if "encoder" in r and "error" not in r]
    if not encoders:
        return []
    lines = ["## ViT encoder alone (forward + backward, no decoder, loss or optimizer)", "",
             "| precision | s | GFLOP | TFLOP/s | % peak | share of step FLOPs | share of network-only step time |",
             "|---|---|---|---|---|---|---|"]
    for run in encoders:
        e = run["encoder"]
        lines.append(f"| {run['precision']} | {e['median_s']:.3f} ({e['steps_timed']}) | {e['flops'] / 1e9:.0f} | "
                     f"{fmt(e.get('achieved_tflops'))} | {fmt(e.get('percent_of_matmul_peak'), '.1f')} | "
                     f"{fmt(e.get('flops_share_of_step'), '.0%')} | "
                     f"{fmt(e.get('time_share_of_network_only_step'), '.0%')} |")
    return lines + [""]


def _met(entry: dict | None) -> str:
    return "-" if entry is None or "met" not in entry else ("yes" if entry["met"] else "**no**")


def _ratio_tables(results: dict) -> list[str]:
    by_label: dict[str, dict[str, dict]] = {}
    for r in results["ratios"]:
        if r["key"] != "real_over_network":
            by_label.setdefault(r["label"], {})[r["mode"]] = r
    lines = ["## Ratios", ""]
    if by_label:
        lines += ["| ratio | network-only | real | target | met (network-only / real) |", "|---|---|---|---|---|"]
    else:
        lines.append("(none between trainers or precisions: this run has too few of them)")
    for label, entries in by_label.items():
        net, real = entries.get("network"), entries.get("real")
        target = (net or real).get("target", "-")
        lines.append(f"| {label} | {fmt(net and net['value'], '.2f')} | {fmt(real and real['value'], '.2f')} | "
                     f"{target} | {_met(net)} / {_met(real)} |")
    lines += ["", "| real step / network-only step | value | target | met |", "|---|---|---|---|"]
    for r in results["ratios"]:
        if r["key"] == "real_over_network":
            lines.append(f"| {r['label'].split(', ', 1)[1]} | {r['value']:.2f} | {r['target']} | {_met(r)} |")
    return lines + ["", "Targets: " + "; ".join(f"`{k}` {op} {t}: {why}" for k, (op, t, why) in TARGETS.items()) + ".",
                    ""]


def _notes(device: str) -> list[str]:
    notes = [
        "Every (trainer, precision) runs in its own subprocess; the trainer is built like `nnUNetv2_train` builds it "
        "(plans from the preprocessed folder with the batch size overridden, fold `all` so no split file is written), "
        "then `initialize()`, `get_dataloaders()`, `on_train_epoch_start()` (our trainers step the LR per iteration "
        "inside `train_step`).",
        "network-only: nnU-Net's data-augmentation workers are paused, so they take no CPU from the step. real: the "
        "loader's prefetched batches are discarded first and the workers resumed, so the timed steps see the "
        "steady-state pipeline; the time includes `next(dataloader_train)` (its median is the data-wait column).",
    ]
    if device == "cpu":
        return notes + [
            "nnU-Net's CNN and Primus-S have no CPU mixed precision: their fp32 rows are their own `train_step`; their "
            "bf16 rows wrap that whole `train_step` (forward, loss, backward, optimizer step) in an EXTERNAL "
            "`torch.autocast('cpu', dtype=torch.bfloat16)`, which nnU-Net itself never does. Our trainers autocast "
            "forward and loss only (`trainer.mixed_precision`).",
            "Memory on CPU: resident set size of the measuring process (VmRSS before the first step, VmHWM peak over "
            "both phases, AdamW state included from the first step on); the data-augmentation worker processes "
            "are not included.",
        ]
    return notes + ["nnU-Net's CNN and Primus-S run their own `train_step`, which autocasts to fp16 with a GradScaler "
                    "on CUDA; they appear in the mixed-precision rows as fp16 AMP (their % peak uses the bf16 torch.mm "
                    "rate) and have no fp32 row."]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in results["runs"] if "error" not in r]
    trainers = [t for t in dict.fromkeys(r["trainer"] for r in runs)]
    series = [(mode, p) for mode in MODES for p in PRECISIONS if any(r["precision"] == p for r in runs)]
    if not trainers or not series:
        return
    width = 0.8 / len(series)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {("network", "fp32"): "#9ecae1", ("network", "bf16"): "#3182bd", ("real", "fp32"): "#fdae6b",
              ("real", "bf16"): "#e6550d"}
    for k, (mode, p) in enumerate(series):
        xs, secs, pct, hatches = [], [], [], []
        for i, t in enumerate(trainers):
            run = find_run(runs, t, p)
            if run is None:
                continue
            xs.append(i + (k - (len(series) - 1) / 2) * width)
            secs.append(run[mode]["median_s"])
            pct.append(run[mode].get("percent_of_matmul_peak", 0.0))
            hatches.append("//" if run["external_autocast"] else "")
        label = f"{mode}, {p}"
        bars = axes[0].bar(xs, secs, width, label=label, color=colors[(mode, p)])
        bars2 = axes[1].bar(xs, pct, width, label=label, color=colors[(mode, p)])
        for bar, bar2, hatch in zip(bars, bars2, hatches):
            bar.set_hatch(hatch)
            bar2.set_hatch(hatch)
        axes[0].bar_label(bars, fmt="%.2f", fontsize=6)
        axes[1].bar_label(bars2, fmt="%.0f", fontsize=6)
    names = [SHORT.get(t, t) for t in trainers]
    for ax in axes:
        ax.set_xticks(range(len(trainers)), names)
    axes[0].set_ylabel("seconds per train_step (median)")
    axes[0].set_title(f"batch {results['settings']['batch_size']}, {results['settings']['configuration']}")
    axes[1].set_ylabel("% of torch.mm peak (same precision)")
    axes[1].set_title("hardware efficiency (FLOP counter / step time)")
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=colors[key], label=f"{key[0]}, {key[1]}") for key in series]
    if any(r["external_autocast"] for r in runs):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="bf16 by external autocast"))
    axes[0].legend(handles=handles, fontsize=8)
    hardware = results["machine"].get("gpu") or results["machine"].get("cpu")
    fig.suptitle(f"{hardware}, torch {results['machine']['torch']}, {results['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
