"""Why MAE pre-training made the ViT-S encoder worse on Hippocampus, recipe by recipe, measured with the probe.

    python benchmarks/mae_recipe.py --work /tmp/mae_recipe                          # every stage
    python benchmarks/mae_recipe.py --work /tmp/mae_recipe --stages probe,report     # probe what has finished

Stages, each resumable (a finished run or probe is skipped; results are written as each one finishes):
1. pretrain: `nnUNetv2_train 4 3d_fullres all -tr nnUNetTrainerMAEPretrain_recipe_<name>` for each recipe
   (benchmarks/trainers/recipe_trainers.py: 40 epochs x 100 iterations, seed 0, a snapshot every 4 epochs), one at a
   time; `--c` continues an interrupted one.
2. probe: every snapshot, and a random-init encoder, probed as `nnunet_mae probe` does (the UNETR decoder's four
   feature maps, linear head, 32 fold-0 training cases x 2 crops, 40 fold-0 validation cases) with `--seeds`
   crop seeds; plus, on seed 0: the final block alone (the issue's quick view), a non-linear (MLP) head, the
   effective rank and per-channel variance of the final features (collapse), and the cosine similarity of a visible
   token's features when the encoder sees 25% of the tokens (as in pre-training) and all of them (the gap).
3. report: results.json, results.md and curves.png in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (DATASET, DEFAULT_DATA, machine_info, prepare_workspace, run_logged,  # noqa: E402
                    split_choices, workspace_environment)

# the recipes: every class nnUNetTrainerMAEPretrain_recipe_<name> of benchmarks/trainers/recipe_trainers.py
RECIPES = re.findall(r"^class nnUNetTrainerMAEPretrain_recipe_(\w+)\(",
                     (Path(__file__).resolve().parent / "trainers" / "recipe_trainers.py").read_text(), re.M)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="default,normpix,dec8,mr90,lr1e4,long")
    parser.add_argument("--stages", default="pretrain,probe,report")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--every", type=int, default=2, help="probe every n-th snapshot (and the last)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet_mae_recipe"))
    parser.add_argument("--out", type=Path, default=HERE.parent / "documentation" / "benchmarks" / "mae_recipe_cpu")
    args = parser.parse_args(argv)
    args.recipes = split_choices(parser, args.recipes, RECIPES, "recipe")
    return args


def trainer(recipe: str) -> str:
    return f"nnUNetTrainerMAEPretrain_recipe_{recipe}"


def run_folder(args, recipe: str) -> Path:
    return args.work / "results" / DATASET / f"{trainer(recipe)}__nnUNetPlans__3d_fullres" / "fold_all"


def pretrain(args, env) -> None:
    for recipe in args.recipes:
        folder = run_folder(args, recipe)
        if (folder / "checkpoint_final.pth").is_file():
            continue
        resume = ["--c"] if (folder / "checkpoint_latest.pth").is_file() else []
        print(f"pre-training {recipe} ...", flush=True)
        run_logged(["nnUNetv2_train", "4", "3d_fullres", "all", "-tr", trainer(recipe), "-device", "cpu"] + resume,
                   env, args.work / "logs" / f"pretrain_{recipe}.log", append=True)


# ----- stage 2 -------------------------------------------------------------------------------------------------------
def diagnostics(probe, network, seed: int = 0, mlp: bool = True) -> dict:
    """Second views of one encoder (seed 0 crops): final block alone, MLP head (if `mlp`), collapse, 25%-visible
    gap."""
    import torch

    from nnunet_mae.architectures.mae import gather_tokens
    from nnunet_mae.masking.random_masking import random_token_masking
    from nnunet_mae.probing.features import feature_batches

    setup = probe.setup
    final_only = lambda net, x: probe.read(net, x)[-1:]  # noqa: E731
    quick = setup.probe(network, final_only, seed=seed, device=probe.device)
    extra = {}
    if mlp:
        result = type(setup)(**{**setup.__dict__, "head": "mlp"}).probe(network, probe.read, seed=seed,
                                                                          device=probe.device, with_train_dice=True)
        extra = {"mlp_dice": result.dice, "mlp_train_dice": result.train_dice}
    _, val_cases = setup.cases(seed)
    crops = setup.crops(val_cases[:16], 1, seed)
    finals = torch.cat([maps[-1].flatten(2).transpose(1, 2).reshape(-1, maps[-1].shape[1])
                        for maps, _ in feature_batches(probe.read, network, crops.images, crops.labels,
                                                       device=probe.device)])  # (tokens, D)
    centred = finals - finals.mean(0)
    singular = torch.linalg.svdvals(centred)
    p = singular / singular.sum()
    effective_rank = float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))
    encoder = network.encoder
    with torch.no_grad():
        x = torch.from_numpy(crops.images)
        tokens = encoder.embed(x)
        full, _ = encoder.forward_tokens(tokens)
        ids_keep, _, _ = random_token_masking(x.shape[0], tokens.shape[1], 0.75,
                                              generator=torch.Generator().manual_seed(seed))
        visible, _ = encoder.forward_tokens(gather_tokens(tokens, ids_keep))
        cosine = torch.nn.functional.cosine_similarity(visible, gather_tokens(full, ids_keep), dim=-1)
    return {"final_block_dice": quick.dice, **extra, "effective_rank": effective_rank,
            "channel_variance": float(centred.var(0).mean()),
            "visible_vs_full_cosine": float(cosine.mean()), "feature_dim": int(finals.shape[1]),
            "tokens": int(finals.shape[0])}


def checkpoint_probe(work: Path, snapshot: Path):
    """The probe of `snapshot` on the workspace's Hippocampus, 3d_fullres, on the CPU (`CheckpointProbe`)."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json

    from nnunet_mae.training.probe_checkpoint import CheckpointProbe

    base = work / "preprocessed" / DATASET
    return CheckpointProbe(snapshot, plans=load_json(str(base / "nnUNetPlans.json")),
                           dataset_json=load_json(str(base / "dataset.json")), configuration="3d_fullres",
                           preprocessed_base=base, device=torch.device("cpu"))


def probe_one(args, snapshot: Path, out: Path, random_init: bool = False, mlp: bool = False) -> None:
    import torch

    from nnunet_mae.probing.fit import mean_dice

    probe = checkpoint_probe(args.work, snapshot)
    network = probe.network(0 if random_init else None)
    start = time.perf_counter()
    results = [probe.probe(network, seed, with_train_dice=seed == 0) for seed in range(args.seeds)]
    seconds = (time.perf_counter() - start) / args.seeds
    seeds = [r.dice for r in results]
    meta = {} if random_init else {k: v for k, v in torch.load(snapshot, map_location="cpu", weights_only=True).items()
                                  if k in ("epoch", "iterations", "train_seconds")}
    record = {"snapshot": "random init" if random_init else snapshot.name, **meta, "dice_seeds": seeds,
              "mean_seeds": [mean_dice(d) for d in seeds], "probe_seconds": seconds,
              "linear_train_dice": results[0].train_dice,
              **diagnostics(probe, network, mlp=mlp), "machine": machine_info("cpu")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"{out.parent.name}/{out.name}: mean Dice {record['mean_seeds']}", flush=True)


def probe_all(args) -> None:
    probes = args.work / "probes"
    first = next((s for r in args.recipes for s in sorted((run_folder(args, r) / "snapshots").glob("*.pth"))), None)
    if first is not None and not (probes / "random.json").is_file():
        probe_one(args, first, probes / "random.json", random_init=True, mlp=True)
    for recipe in args.recipes:
        snapshots = sorted((run_folder(args, recipe) / "snapshots").glob("epoch_*.pth"))
        chosen = snapshots[::args.every] + ([snapshots[-1]] if snapshots and len(snapshots) % args.every != 1
                                           and args.every > 1 else [])
        final = (run_folder(args, recipe) / "checkpoint_final.pth").is_file()
        for snapshot in dict.fromkeys(chosen):
            out = probes / recipe / snapshot.with_suffix(".json").name
            if not out.is_file():
                probe_one(args, snapshot, out, mlp=final and snapshot == snapshots[-1])


def main(argv=None) -> int:
    args = parse(argv)
    env = workspace_environment(args.work)
    (args.work / "logs").mkdir(parents=True, exist_ok=True)
    stages = args.stages.split(",")
    if "pretrain" in stages:
        prepare_workspace(args.data, args.work, env)
        pretrain(args, env)
    if "probe" in stages:
        os.environ.update({k: env[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results",
                                               "nnUNet_extTrainer")})
        probe_all(args)
    if "report" in stages:
        from mae_recipe_report import write_report
        write_report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
