"""nnU-Net's CNN under one set of plans, training steps side by side in one process: the CNN MAE pre-training step
(`nnUNetTrainerMAEPretrain_CNN`: masked input, reconstruction, no deep supervision), the CNN MAE fine-tuning step
(`nnUNetTrainerMAEFinetune_CNN`: nnU-Net's deep-supervised Dice + CE) and nnU-Net's own `nnUNetTrainer` step.

Each trainer is built and initialised as nnUNetv2_train builds it (plans, dataset.json, its optimiser and loss) and
its own `train_step` is timed on one fixed batch of the plans' patch size (random image, random labels), so data
loading is left out. Precision: our trainers' `_fp32` and `_bf16` variants; nnU-Net's trainer runs fp32 on a CPU.
Repeats run the candidates in turn (`common.interleaved_timings`), so the ratios hold on a drifting machine.

    python benchmarks/cnn_mae_step.py --preprocessed $nnUNet_preprocessed/Dataset004_Hippocampus \
        -p nnUNetResEncUNetMPlans --batch-size 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def trainer_step(cls, plans: dict, dataset_json: dict, batch_size: int, seed: int = 0):
    """An initialised trainer of `cls` on the plans' 3d_fullres configuration, and a callable running one of its
    train_steps on a fixed batch."""
    import torch
    import torch.nn.functional as F

    plans = {**plans, "configurations": {**plans["configurations"]}, "continue_training": False}  # as run_training
    plans["configurations"]["3d_fullres"] = {**plans["configurations"]["3d_fullres"], "batch_size": batch_size}
    trainer = cls(plans, "3d_fullres", 0, dataset_json, torch.device("cpu"))
    trainer.initialize()
    patch = trainer.configuration_manager.patch_size
    generator = torch.Generator().manual_seed(seed)
    data = torch.randn(batch_size, 1, *patch, generator=generator)
    seg = torch.randint(0, len(dataset_json["labels"]), (batch_size, 1, *patch), generator=generator).float()
    if trainer.enable_deep_supervision:
        target = [seg if all(s == 1 for s in scale) else
                  F.interpolate(seg, size=[round(n * s) for n, s in zip(patch, scale)], mode="nearest")
                  for scale in trainer._get_deep_supervision_scales()]
    else:
        target = seg
    batch = {"data": data, "target": target, "keys": [f"case_{i}" for i in range(batch_size)]}
    trainer.network.train()
    if hasattr(trainer, "_epoch_iteration"):
        trainer._epoch_iteration = 0
    return trainer, lambda: trainer.train_step(batch)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preprocessed", type=Path, required=True,
                        help="the dataset's folder in nnUNet_preprocessed (holds the plans and dataset.json)")
    parser.add_argument("-p", "--plans", default="nnUNetResEncUNetMPlans")
    parser.add_argument("--batch-size", type=int, default=4, help="overrides the plans' batch size")
    parser.add_argument("--precisions", default="fp32,bf16", help="our trainers' precision variants to time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE.parent / "documentation" / "benchmarks" / "cnn_mae_cpu")
    args = parser.parse_args(argv)
    plans_file = args.preprocessed / f"{args.plans}.json"
    if not plans_file.is_file():
        sys.exit(f"{plans_file} does not exist: run nnUNetv2_plan_experiment -d DATASET -pl nnUNetPlannerResEncM "
                 f"(or the planner of {args.plans}) first.")
    os.environ.setdefault("nnUNet_results", tempfile.mkdtemp(prefix="cnn_mae_step_"))
    os.environ.setdefault("nnUNet_preprocessed", str(args.preprocessed.parent))
    import torch
    from common import interleaved_timings, machine_info
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    import nnunet_mae.training.trainers as ours

    plans = json.loads(plans_file.read_text())
    dataset_json = json.loads((args.preprocessed / "dataset.json").read_text())
    precisions = [p for p in args.precisions.split(",") if p]
    candidates = {}
    for precision in precisions:
        candidates[f"MAE pre-training step ({precision})"] = getattr(ours, f"nnUNetTrainerMAEPretrain_CNN_{precision}")
        candidates[f"MAE fine-tuning step ({precision})"] = getattr(ours, f"nnUNetTrainerMAEFinetune_CNN_{precision}")
    candidates["nnUNetTrainer step (fp32)"] = nnUNetTrainer
    steps, network = {}, None
    for name, cls in candidates.items():
        trainer, steps[name] = trainer_step(cls, plans, dataset_json, args.batch_size)
        network = network or type(trainer.network).__name__
    timings = interleaved_timings(steps, args.repeats)
    median = {k: statistics.median(v) for k, v in timings.items()}
    ratios = {}
    for precision in precisions:
        ratios[f"MAE pre-training / MAE fine-tuning ({precision})"] = (
            median[f"MAE pre-training step ({precision})"] / median[f"MAE fine-tuning step ({precision})"])
    if "fp32" in precisions:
        ratios["MAE fine-tuning (fp32) / nnUNetTrainer"] = (median["MAE fine-tuning step (fp32)"] /
                                                             median["nnUNetTrainer step (fp32)"])
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info("cpu"), "plans": args.plans,
               "network": network, "patch": list(plans["configurations"]["3d_fullres"]["patch_size"]),
               "batch_size": args.batch_size, "threads": torch.get_num_threads(), "seconds": timings,
               "median": median, "ratios": ratios}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"step_{args.plans}.json").write_text(json.dumps(results, indent=2))
    print(f"{results['machine'].get('cpu')} ({results['machine'].get('cpu_bf16')}), {args.plans} ({network}), "
          f"batch {args.batch_size}, patch {results['patch']}, {results['threads']} threads")
    for k, v in median.items():
        print(f"  {k}: median {v:.2f} s over {args.repeats} ({', '.join(f'{s:.2f}' for s in timings[k])})")
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
