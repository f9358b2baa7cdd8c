"""`nnunet_mae probe`: what an encoder learnt, as the Dice of a linear probe of its frozen features.

    nnunet_mae probe -d 4 -c 3d_fullres -i .../fold_all/checkpoint_final.pth --random [--seeds 3] [-f 0 [1 2 3 4]]

The checkpoint (a pre-training or fine-tuning checkpoint of this package) is read weights-only; its encoder is
copied into the network its fine-tuning trainer builds, and probed as during pre-training (training/encoder_probe.py):
a linear per-voxel head fitted on crops of nnU-Net's fold `-f` training cases, Dice on crops of that fold's
validation cases. Several folds (`-f 0 1 2 3 4`) cross-validate it: each fold's probe, its Dice weighted by its
validation cases, so every labelled case scores once — the low-noise form for a dataset with few labelled cases.
`--random` adds a randomly initialised encoder of the same shape. Each of `--seeds` seeds draws other crops (and,
for the random encoder, other initial weights); the table gives the mean and the spread.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nnunet_mae.cli.add_unlabeled import _load_target


def parse(argv):
    parser = argparse.ArgumentParser(prog="nnunet_mae probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", required=True, help="dataset name or id")
    parser.add_argument("-c", default="3d_fullres", help="configuration (default 3d_fullres)")
    parser.add_argument("-i", required=True, type=Path, help="checkpoint (.pth) written by an nnunet_mae trainer")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-f", type=int, nargs="+", default=[0],
                        help="nnU-Net fold(s) whose cases the probe uses (default 0; several: cross-validated)")
    parser.add_argument("--seeds", type=int, default=3, help="probe seeds (crops; default 3)")
    parser.add_argument("--random", action="store_true", help="also probe a randomly initialised encoder")
    parser.add_argument("--head", choices=["linear", "mlp"], default="linear")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda where available)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    import torch

    from nnunet_mae.training.encoder_probe import ProbeUnavailable
    from nnunet_mae.training.probe_checkpoint import CheckpointProbe
    from nnunet_mae.transfer.encoder_transfer import TransferError

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name, base, plans, dataset_json = _load_target(args.d, args.p, args.c)
    if not args.i.is_file():
        raise SystemExit(f"{args.i} does not exist.")
    try:  # reading and checking the checkpoint: unreadable, unsafe, foreign or not fitting (all RuntimeErrors)
        probe = CheckpointProbe(args.i, plans=plans, dataset_json=dataset_json, configuration=args.c,
                                preprocessed_base=base, folds=args.f, head=args.head, device=device)
    except RuntimeError as e:
        raise SystemExit(str(e)) from None
    try:
        rows = probe.rows(seeds=args.seeds, random=args.random)
    except (TransferError, ProbeUnavailable) as e:
        raise SystemExit(str(e)) from None
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def format_table(rows: list[dict]) -> str:
    labels = rows[0]["labels"]
    head = ["encoder"] + labels + ["mean", "spread", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["encoder"]] + [f"{d:.3f}" for d in row["dice_mean"]] + [
            f"{row['mean']:.3f}", f"{row['spread']:.3f}", f"{row['seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    folds = rows[0]["folds"]
    where = f"fold {folds[0]}" if len(folds) == 1 else f"cross-validated over folds {', '.join(map(str, folds))}"
    lines.append(f"Dice per label and mean ({where}): averages over {len(rows[0]['seeds'])} probe seed(s); spread: "
                 f"max - min of the mean Dice over the seeds; seconds: per seed, features included.")
    return "\n".join(lines)
