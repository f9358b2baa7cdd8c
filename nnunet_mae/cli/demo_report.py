"""What `nnunet_mae demo` reports: the Dice of the test cases, the table, the gain line and demo_summary.png."""

from __future__ import annotations

import json
from pathlib import Path

from nnunet_mae.cli.demo_trainers import MEASURED_GAINS


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def read_dice(summary_file: Path) -> dict[str, float]:
    """Mean Dice per label name and over the foreground from nnUNetv2_evaluate_simple's summary.json."""
    from nnunet_mae.data.synthetic import LABELS

    summary = json.loads(summary_file.read_text())
    dice = {name: float(summary["mean"][str(value)]["Dice"]) for name, value in LABELS.items() if value > 0}
    dice["mean"] = float(summary["foreground_mean"]["Dice"])
    return dice



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
                   "benefit; at minutes of CPU training the decoder, not the encoder, decides the Dice (a frozen "
                   "random encoder scores the same)")
        line += (f" Measured with seeds {', '.join(map(str, measured['seeds']))} on {measured['machine']}: "
                 f"{', '.join(f'{g:+.3f}' for g in gains)} (mean {mean:+.3f}, spread {spread:.3f}): {verdict} "
                 f"(documentation/benchmarks.md).")
    return line

