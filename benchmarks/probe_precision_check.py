"""Is the fall of the probe after MAE pre-training real, or bf16? Probes one snapshot of benchmarks/mae_recipe.py with
bf16 and with fp32 features (crop seed 0) and prints the size of bf16's rounding relative to the features' spread.

    nnUNet_extTrainer=benchmarks/trainers nnUNet_preprocessed=$WORK/preprocessed nnUNet_results=$WORK/results \
        python benchmarks/probe_precision_check.py $WORK/results/.../snapshots/epoch_0012.pth --work $WORK
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mae_recipe import checkpoint_probe  # noqa: E402

from nnunet_mae.probing.fit import mean_dice  # noqa: E402
from nnunet_mae.training.precision import choose_precision  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("snapshot", type=Path)
    parser.add_argument("--work", type=Path, required=True, help="the --work folder of benchmarks/mae_recipe.py")
    args = parser.parse_args()
    out = {}
    probe = checkpoint_probe(args.work, args.snapshot)
    net = probe.network(None)
    # feature statistics in fp32: mean magnitude vs spread of the final map, per channel
    _, val_cases = probe.setup.cases(0)
    crops = probe.setup.crops(val_cases[:8], 1, 0)
    with torch.no_grad():
        net.eval()
        maps = probe.read(net, torch.from_numpy(crops.images))
    stats = []
    for m in maps:
        f = m.float().flatten(2).transpose(1, 2).reshape(-1, m.shape[1])
        mu, sd = f.mean(0), f.std(0)
        q = f.to(torch.bfloat16).float()
        stats.append({"abs_mean": float(mu.abs().mean()), "std": float(sd.mean()),
                      "max_abs_mean": float(mu.abs().max()),
                      "bf16_rel_error_of_centred": float((q - f).pow(2).mean().sqrt() / sd.mean())})
    out["maps"] = stats
    for precision in ("bf16", "fp32"):
        probe.precision = choose_precision(precision, "cpu")
        t = time.perf_counter()
        r = probe.probe(net, 0, with_train_dice=True)
        out[precision] = {"dice": r.dice, "mean": mean_dice(r.dice), "train_dice": r.train_dice,
                          "seconds": time.perf_counter() - t}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
