"""PrimusV3 training steps, network only, interleaved in one process: nnU-Net's PrimusV3 segmentation step vs the
MAE pre-training step of `architectures/primus_mae.py` (75% of the tokens masked), and where the MAE step's time
goes (convolutional stem on every voxel vs Eva blocks on the visible tokens vs MAE decoder).

A step: forward of a fixed batch (Hippocampus 3d_fullres patch 40 x 56 x 40 by default), loss in fp32 (mean square
for the segmentation output; masked reconstruction for MAE), backward, AdamW step; precision by the trainers' rule
(`--precision auto`). Repeats run the candidates in turn, so their ratios are robust to drift on a shared machine.

    python benchmarks/primus_mae_step.py --size S --batch-size 2 --repeats 3      # minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def step(network, precision, forward, loss_of, optimise: bool = True):
    """A callable: forward under the precision's autocast, loss in fp32, backward, and (optimise) an AdamW step."""
    import torch

    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], 1e-4) if optimise else None

    def run():
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        with precision.autocast("cpu"):
            out = forward()
        loss_of(out).backward()
        if optimizer is not None:
            optimizer.step()
    return run


def candidate_steps(size: str, patch: list[int], batch_size: int, precision) -> tuple[dict, dict]:
    """The timed callables by name, and the two networks' parameter counts (millions)."""
    import torch
    from dynamic_network_architectures.architectures import primus

    from nnunet_mae.architectures import primus_mae
    from nnunet_mae.architectures.tokens import patchify, token_grid
    from nnunet_mae.losses.reconstruction import masked_reconstruction_loss
    from nnunet_mae.masking.random_masking import random_token_masking

    kwargs = dict(patch_embed_size=(8, 8, 8), input_shape=tuple(patch), drop_path_rate=0.2,
                  scale_attn_inner=True, init_values=0.1)
    segmentation = getattr(primus, f"PrimusV3{size}")(1, 3, **kwargs)  # as nnUNet_PrimusV3*_Trainer builds it
    mae = getattr(primus_mae, f"PrimusV3{size}MAE")(1, 3, **kwargs)
    x = torch.randn(batch_size, 1, *patch)
    masks = random_token_masking(batch_size, math.prod(token_grid(patch, (8, 8, 8))), 0.75,
                                 generator=torch.Generator().manual_seed(0))
    target = patchify(x, (8, 8, 8))
    # the same MAE network and batch in channels-last memory format (NDHWC), a candidate to shrink the stem's share
    mae_cl = copy.deepcopy(mae).to(memory_format=torch.channels_last_3d)
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)

    def reconstruction(pred):
        return masked_reconstruction_loss(pred.float(), target, masks[2], False)

    def mean(out):
        return out.float().mean()

    steps = {
        "segmentation step": step(segmentation, precision, lambda: segmentation(x).float().square().mean(),
                                  lambda loss: loss),
        "MAE step": step(mae, precision, lambda: mae(x, *masks), reconstruction),
        # the MAE step's convolutional stem, forward + backward, on the zeroed image
        "MAE stem only": step(mae, precision, lambda: mae.down_projection(x), mean, optimise=False),
        # stem + Eva blocks on the visible tokens, forward + backward (no MAE decoder)
        "MAE stem + Eva on visible tokens": step(mae, precision, lambda: mae.encode_visible(x, masks[0], masks[2]),
                                                 mean, optimise=False),
        "MAE step, channels-last": step(mae_cl, precision, lambda: mae_cl(x_cl, *masks), reconstruction),
        "MAE stem only, channels-last": step(mae_cl, precision, lambda: mae_cl.down_projection(x_cl), mean,
                                             optimise=False),
    }
    parameters = {"segmentation": sum(p.numel() for p in segmentation.parameters()) / 1e6,
                  "mae": sum(p.numel() for p in mae.parameters()) / 1e6}
    return steps, parameters


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["S", "B", "M", "L"], default="S")
    parser.add_argument("--patch", type=int, nargs=3, default=[40, 56, 40])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="auto", help="auto, bf16 or fp32 (training/precision.py)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "primus_mae_step")
    args = parser.parse_args(argv)
    import torch
    from common import interleaved_timings, machine_info

    from nnunet_mae.training.precision import choose_precision

    precision = choose_precision(args.precision, "cpu")
    steps, parameters = candidate_steps(args.size, args.patch, args.batch_size, precision)
    timings = interleaved_timings(steps, args.repeats)
    median = {k: statistics.median(v) for k, v in timings.items()}
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info("cpu"),
               "precision": precision.describe(), "size": args.size, "patch": args.patch,
               "batch_size": args.batch_size, "threads": torch.get_num_threads(), "seconds": timings, "median": median,
               "parameters_millions": parameters,
               "ratios": {"MAE step / segmentation step": median["MAE step"] / median["segmentation step"],
                          "stem share of the MAE step": median["MAE stem only"] / median["MAE step"],
                          "MAE step channels-last / MAE step": median["MAE step, channels-last"] / median["MAE step"],
                          "stem channels-last / stem":
                              median["MAE stem only, channels-last"] / median["MAE stem only"]}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"{results['machine'].get('cpu')} ({results['machine'].get('cpu_bf16')}), {precision.describe()}, "
          f"PrimusV3-{args.size}, batch {args.batch_size}, patch {args.patch}, {results['threads']} threads")
    for k, v in median.items():
        print(f"  {k}: median {v:.2f} s over {args.repeats} ({', '.join(f'{s:.2f}' for s in timings[k])})")
    for k, v in results["ratios"].items():
        print(f"  {k}: {v:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
