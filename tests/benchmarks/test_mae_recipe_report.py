"""benchmarks/mae_recipe_report.py: the table and curves are rebuilt from whatever probes finished."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import mae_recipe_report  # noqa: E402


def record(iterations, means, mlp=None):
    return {"iterations": iterations, "train_seconds": iterations * 0.6, "mean_seeds": means,
            "final_block_dice": [0.2, 0.4], "mlp_dice": mlp, "effective_rank": 100.0 + iterations / 100,
            "feature_dim": 384, "channel_variance": 0.1, "visible_vs_full_cosine": 0.9}


def test_report_orders_snapshots_by_iterations_and_skips_missing_recipes(tmp_path):
    probes = tmp_path / "probes"
    (probes / "default").mkdir(parents=True)
    (probes / "random.json").write_text(json.dumps(record(0, [0.30, 0.40], mlp=[0.5, 0.5])))
    (probes / "default" / "epoch_0012.json").write_text(json.dumps(record(1200, [0.1])))
    (probes / "default" / "epoch_0001.json").write_text(json.dumps(record(100, [0.3])))
    args = SimpleNamespace(work=tmp_path, recipes=["default", "normpix"], out=tmp_path / "out")
    mae_recipe_report.write_report(args)
    table = (args.out / "results.md").read_text().splitlines()
    assert [line.split(" | ")[:2] for line in table[2:]] == [["| random init", "0"], ["| default", "100"],
                                                               ["| default", "1200"]]
    assert "0.350 (0.300 / 0.400)" in table[2] and "0.500" in table[2]  # seed mean, seeds, MLP head
    assert table[4].split(" | ")[5] == "—"  # no MLP probe of that snapshot
    results = json.loads((args.out / "results.json").read_text())
    assert list(results["recipes"]) == ["default"]  # normpix has no probe yet
    assert (args.out / "curves.png").stat().st_size > 0
