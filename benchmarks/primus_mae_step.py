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
    from dynamic_network_architectures.architectures import primus
    from common import machine_info

    from nnunet_mae.architectures import primus_mae
    from nnunet_mae.architectures.tokens import patchify, token_grid
    from nnunet_mae.losses.reconstruction import masked_reconstruction_loss
    from nnunet_mae.masking.random_masking import random_token_masking
    from nnunet_mae.training.precision import choose_precision

    precision = choose_precision(args.precision, "cpu")
    kwargs = dict(patch_embed_size=(8, 8, 8), input_shape=tuple(args.patch), drop_path_rate=0.2,
                  scale_attn_inner=True, init_values=0.1)
    segmentation = getattr(primus, f"PrimusV3{args.size}")(1, 3, **kwargs)  # as nnUNet_PrimusV3*_Trainer builds it
    mae = getattr(primus_mae, f"PrimusV3{args.size}MAE")(1, 3, **kwargs)
    optimizers = {name: torch.optim.AdamW([p for p in n.parameters() if p.requires_grad], 1e-4)
                  for name, n in (("segmentation", segmentation), ("mae", mae))}
    x = torch.randn(args.batch_size, 1, *args.patch)
    num_tokens = math.prod(token_grid(args.patch, (8, 8, 8)))
    masks = random_token_masking(args.batch_size, num_tokens, 0.75, generator=torch.Generator().manual_seed(0))
    timings: dict[str, list[float]] = {}

    def timed(name, fn):
        start = time.perf_counter()
        fn()
        timings.setdefault(name, []).append(time.perf_counter() - start)

    def segmentation_step():
        optimizers["segmentation"].zero_grad(set_to_none=True)
        with precision.autocast("cpu"):
            loss = segmentation(x).float().square().mean()
        loss.backward()
        optimizers["segmentation"].step()

    def mae_step():
        optimizers["mae"].zero_grad(set_to_none=True)
        with precision.autocast("cpu"):
            pred = mae(x, *masks)
        masked_reconstruction_loss(pred.float(), patchify(x, (8, 8, 8)), masks[2], False).backward()
        optimizers["mae"].step()

    def stem_only():  # the MAE step's convolutional stem, forward + backward, on the zeroed image
        with precision.autocast("cpu"):
            out = mae.down_projection(x)
        out.float().mean().backward()

    def encoder_only():  # stem + Eva blocks on the visible tokens, forward + backward (no MAE decoder)
        with precision.autocast("cpu"):
            out = mae.encode_visible(x, masks[0], masks[2])
        out.float().mean().backward()

    # the same MAE network and batch in channels-last memory format (NDHWC), a candidate to shrink the stem's share
    mae_cl = copy.deepcopy(mae).to(memory_format=torch.channels_last_3d)
    optimizers["mae_cl"] = torch.optim.AdamW([p for p in mae_cl.parameters() if p.requires_grad], 1e-4)
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)

    def mae_step_channels_last():
        optimizers["mae_cl"].zero_grad(set_to_none=True)
        with precision.autocast("cpu"):
            pred = mae_cl(x_cl, *masks)
        masked_reconstruction_loss(pred.float(), patchify(x, (8, 8, 8)), masks[2], False).backward()
        optimizers["mae_cl"].step()

    def stem_only_channels_last():
        with precision.autocast("cpu"):
            out = mae_cl.down_projection(x_cl)
        out.float().mean().backward()

    steps = {"segmentation step": segmentation_step, "MAE step": mae_step, "MAE stem only": stem_only,
             "MAE stem + Eva on visible tokens": encoder_only, "MAE step, channels-last": mae_step_channels_last,
             "MAE stem only, channels-last": stem_only_channels_last}
    for fn in steps.values():  # warm-up
        fn()
    for _ in range(args.repeats):
        for name, fn in steps.items():
            timed(name, fn)
    median = {k: statistics.median(v) for k, v in timings.items()}
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info("cpu"),
               "precision": precision.describe(), "size": args.size, "patch": args.patch,
               "batch_size": args.batch_size, "threads": torch.get_num_threads(), "seconds": timings, "median": median,
               "parameters_millions": {"segmentation": sum(p.numel() for p in segmentation.parameters()) / 1e6,
                                       "mae": sum(p.numel() for p in mae.parameters()) / 1e6},
               "ratios": {"MAE step / segmentation step": median["MAE step"] / median["segmentation step"],
                          "stem share of the MAE step": median["MAE stem only"] / median["MAE step"],
                          "MAE step channels-last / MAE step": median["MAE step, channels-last"] / median["MAE step"],
                          "stem channels-last / stem": median["MAE stem only, channels-last"] / median["MAE stem only"]}}
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
