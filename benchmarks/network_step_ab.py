"""Interleaved comparison of network-only training steps in one process: ViT-S (UNETR-style decoder), ViT-S (patch
decoder) and nnU-Net's Primus-S, fp32 and bf16 autocast.

On a shared or virtual machine, step times drift by tens of percent over minutes; running the candidates in turn,
repeat after repeat, in the same process makes their ratios robust to that drift (benchmarks/step_speed.py runs each
in its own subprocess, one after the other). A step: forward of a fixed batch (9 x 1 x 40 x 56 x 40, Hippocampus
3d_fullres plans), mean-square loss in fp32, backward, AdamW step. The networks are built by the trainer classes from
the plans, as nnUNetv2_train builds them.

    python benchmarks/network_step_ab.py                 # about 3 minutes on 2 CPU cores

Writes results.json into --out and prints the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def networks_from_plans(work: Path):
    """The three networks as their trainer classes build them from Hippocampus' plans, and the patch size."""
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_mae.training.trainers import nnUNetTrainerViT, nnUNetTrainerViT_patchdec

    plans = PlansManager(load_json(work / "preprocessed" / "Dataset004_Hippocampus" / "nnUNetPlans.json"))
    configuration = plans.get_configuration("3d_fullres")
    builders = {"ViT-S UNETR": nnUNetTrainerViT, "ViT-S patch decoder": nnUNetTrainerViT_patchdec,
                "Primus-S": recursive_find_trainer_class_by_name("nnUNet_Primus_S_Trainer")}
    return {k: b.build_network_architecture(plans, configuration, 1, 3, False) for k, b in builders.items()}, \
        list(configuration.patch_size)


def training_step(network, x, bf16: bool):
    """A callable: forward (bf16 autocast or fp32), mean-square loss in fp32, backward, AdamW step."""
    import torch

    optimizer = torch.optim.AdamW(network.parameters(), 1e-4)

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = network(x)
            out = out[0] if isinstance(out, (list, tuple)) else out
            loss = out.float().square().mean()
        loss.backward()
        optimizer.step()
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=9)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet_mae_quality"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "network_step_ab")
    parser.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto",
                        help="also time bf16 autocast; auto: where the trainers' rule would choose bf16 on this CPU")
    args = parser.parse_args(argv)
    import torch
    from common import interleaved_timings, machine_info

    from nnunet_mae.training.precision import choose_precision

    networks, patch_size = networks_from_plans(args.work)
    x = torch.randn(args.batch_size, 1, *patch_size)
    with_bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and choose_precision("auto", "cpu").precision == "bf16")
    seconds: dict[str, list[float]] = {}
    for bf16 in (False, True) if with_bf16 else (False,):  # fp32 rounds first, then bf16 rounds
        steps = {f"{name} {'bf16' if bf16 else 'fp32'}": training_step(n, x, bf16) for name, n in networks.items()}
        seconds.update(interleaved_timings(steps, args.repeats))
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info("cpu"),
               "threads": torch.get_num_threads(),
               "batch_size": args.batch_size, "patch_size": patch_size, "seconds": seconds,
               "median": {k: statistics.median(v) for k, v in seconds.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    for k, v in results["median"].items():
        print(f"{k}: median {v:.2f} s over {args.repeats} ({', '.join(f'{s:.2f}' for s in seconds[k])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
