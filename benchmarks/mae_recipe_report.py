"""Report of benchmarks/mae_recipe.py: whatever probes have finished, as results.json, results.md and curves.png.

A recipe's curve is the mean probe Dice (over labels, averaged over the crop seeds probed) against pre-training
iterations; the random-init encoder is the baseline, drawn with its spread over seeds (the probe's noise).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path


def load_probes(work: Path, recipes: list[str]) -> tuple[dict | None, dict[str, list[dict]]]:
    """(the random-init record or None, {recipe: its snapshot records by iterations})."""
    probes = work / "probes"
    random_file = probes / "random.json"
    random = json.loads(random_file.read_text()) if random_file.is_file() else None
    curves = {}
    for recipe in recipes:
        records = [json.loads(f.read_text()) for f in sorted((probes / recipe).glob("epoch_*.json"))]
        if records:
            curves[recipe] = sorted(records, key=lambda r: r.get("iterations", 0))
    return random, curves


def row(name: str, record: dict) -> str:
    means, mlp = record["mean_seeds"], record.get("mlp_dice")
    cells = [name, str(record.get("iterations", 0)), f"{record.get('train_seconds', 0) / 60:.1f}",
             f"{statistics.mean(means):.3f} ({' / '.join(f'{m:.3f}' for m in means)})",
             f"{statistics.mean(record['final_block_dice']):.3f}",
             f"{statistics.mean(mlp):.3f}" if mlp else "—",
             f"{record['effective_rank']:.0f} / {record['feature_dim']}", f"{record['channel_variance']:.3f}",
             f"{record['visible_vs_full_cosine']:.3f}"]
    return "| " + " | ".join(cells) + " |"


def markdown(random: dict | None, curves: dict[str, list[dict]]) -> str:
    lines = ["| encoder | MAE iterations | CPU-minutes | probe mean Dice (seeds) | final block only | MLP head | "
             "effective rank | channel variance | cosine 25% visible vs all |",
             "|---|---|---|---|---|---|---|---|---|"]
    if random is not None:
        lines.append(row("random init", random))
    for recipe, records in curves.items():
        lines += [row(recipe, r) for r in records]
    return "\n".join(lines) + "\n"


def plot(random: dict | None, curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    if random is not None:
        means = random["mean_seeds"]
        ax.axhspan(min(means), max(means), color="grey", alpha=0.25, label="random init (spread over seeds)")
    for recipe, records in curves.items():
        ax.plot([r.get("iterations", 0) for r in records], [statistics.mean(r["mean_seeds"]) for r in records],
                marker="o", label=recipe)
    ax.set_xlabel("MAE pre-training iterations")
    ax.set_ylabel("probe mean Dice (validation crops)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(args) -> None:
    random, curves = load_probes(args.work, args.recipes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"random": random, "recipes": curves}, indent=1))
    (args.out / "results.md").write_text(markdown(random, curves))
    if random is not None or curves:
        plot(random, curves, args.out / "curves.png")
    print(f"report in {args.out}", flush=True)
