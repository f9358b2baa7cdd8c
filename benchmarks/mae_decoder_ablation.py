"""Does the MAE decoder use what the encoder says about each token, and does the MAE beat a blur?

Reconstruction loss (MSE on the masked voxels, as in pre-training) of a pre-trained MAE network on two sets of crops
of the 40 fold-0 validation cases: the probe's crops, and crops as nnU-Net's loader cuts them without augmentation
(what the trainer's validation loss sees; about a third of their voxels are padding). For each, the loss with

- the encoder's visible latents as they are,
- the latents replaced by their mean over the visible tokens of the same image (no per-token information left),
- the latents of another image of the batch, and zero latents,

beside two baselines that need no training: predicting 0 (the z-scored mean) and a 5-voxel box filter of the
visible voxels (`inpaint`). If the ablated latents reconstruct as well as the real ones, the decoder predicts the
masked tokens from position and image-level statistics alone and nothing in the loss makes the encoder keep
per-token information: the collapse of benchmarks.md.

    python benchmarks/mae_decoder_ablation.py --work /work/ws/recipe --recipes default,lr1e4 --out results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "trainers"))
from common import DATASET, machine_info  # noqa: E402
from mae_recipe import checkpoint_probe, run_folder, trainer  # noqa: E402

MASK_SEED, CROP_SEED = 0, 0


def inpaint(images, visible_voxels, size: int = 5):
    """Mean of the visible voxels in a size^3 box around each voxel (0 where none is visible)."""
    import torch

    kernel = torch.ones(1, images.shape[1], size, size, size)
    total = torch.nn.functional.conv3d(images * visible_voxels, kernel, padding=size // 2)
    count = torch.nn.functional.conv3d(visible_voxels, kernel, padding=size // 2)
    return torch.where(count > 0, total / count.clamp_min(1e-6), torch.zeros_like(total))


def crop_sets(work: Path, snapshot: Path) -> dict:
    """{name: (N, 1, *patch) float tensor}: the probe's validation crops and nnU-Net loader crops of the same cases."""
    import numpy as np
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    probe = checkpoint_probe(work, snapshot)
    _, val_cases = probe.setup.cases(CROP_SEED)
    sets = {"probe crops (40 validation cases x 2)":
            torch.from_numpy(probe.setup.crops(val_cases, 2, CROP_SEED).images)}
    base = work / "preprocessed" / DATASET
    pm = PlansManager(load_json(str(base / "nnUNetPlans.json")))
    dataset = probe.setup.dataset_class(probe.setup.dataset_folder, identifiers=list(val_cases))
    patch = tuple(probe.setup.patch_size)
    loader = nnUNetDataLoader(dataset, 8, patch, patch, pm.get_label_manager(load_json(str(base / "dataset.json"))),
                              oversample_foreground_percent=0.0, transforms=None)
    np.random.seed(CROP_SEED)
    sets["nnU-Net loader crops, no augmentation (80)"] = torch.cat(
        [torch.as_tensor(np.asarray(next(loader)["data"])).float() for _ in range(10)])
    return sets


def ablate(work: Path, recipe: str, snapshot: Path, sets: dict) -> dict:
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_mae.architectures.tokens import patchify, token_grid, unpatchify
    from nnunet_mae.losses.reconstruction import masked_reconstruction_loss
    from nnunet_mae.masking.random_masking import random_token_masking

    cls = recursive_find_trainer_class_by_name(trainer(recipe))
    pm = PlansManager(load_json(str(work / "preprocessed" / DATASET / "nnUNetPlans.json")))
    net = cls.build_network_architecture(pm, pm.get_configuration("3d_fullres"), 1, 3, False)
    state = torch.load(snapshot, map_location="cpu", weights_only=True)
    net.load_state_dict(state["network_weights"])
    net.eval()
    normalize = bool(state.get("nnunet_mae", {}).get("masking", {}).get("normalize_targets", False))
    token = tuple(net.encoder.token_size)
    rows = {}
    for name, x in sets.items():
        grid = token_grid(x.shape[2:], token)
        n = 1
        for g in grid:
            n *= g
        ids_keep, ids_restore, mask = random_token_masking(x.shape[0], n, 0.75,
                                                           generator=torch.Generator().manual_seed(MASK_SEED))
        target = patchify(x, token)

        def loss(pred):
            return float(masked_reconstruction_loss(pred, target, mask, normalize))

        with torch.no_grad():
            latent = net.encode_visible(x, ids_keep)
            row = {f"MAE, {k}": loss(net.mae_decoder(v, ids_restore, grid)) for k, v in {
                "encoder latents": latent,
                "mean latent of the image": latent.mean(1, keepdim=True).expand_as(latent),
                "latents of another image": latent.roll(1, dims=0),
                "zero latents": torch.zeros_like(latent)}.items()}
            if not normalize:
                visible = unpatchify((1 - mask).unsqueeze(-1).expand_as(target).contiguous(), token, grid, 1)
                row["baseline: predict 0"] = loss(torch.zeros_like(target))
                row["baseline: 5-voxel box filter of the visible voxels"] = loss(patchify(inpaint(x, visible), token))
        rows[name] = row
    return {"recipe": recipe, "snapshot": snapshot.name, "iterations": state.get("iterations"),
            "normalized_targets": normalize, "losses": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--recipes", default="default,lr1e4")
    p.add_argument("--snapshots", default="epoch_0001,epoch_0012,epoch_0040", help="names without .pth")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    rows, sets = [], None
    for recipe in a.recipes.split(","):
        folder = run_folder(a, recipe) / "snapshots"
        for name in a.snapshots.split(","):
            if (folder / f"{name}.pth").is_file():
                sets = sets or crop_sets(a.work, folder / f"{name}.pth")
                rows.append(ablate(a.work, recipe, folder / f"{name}.pth", sets))
                print(json.dumps(rows[-1]), flush=True)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"machine": machine_info("cpu"), "mask_seed": MASK_SEED, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
