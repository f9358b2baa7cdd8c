"""Where a fine-tuning run finds its pre-trained encoder: the file named by `nnUNet_MAE_pretrained`, else the
pre-training's `fold_all/checkpoint_final.pth` in nnU-Net's results layout; with an error that says what is missing
and the command that makes it."""

from __future__ import annotations

import os
from pathlib import Path

PRETRAINED_ENV = "nnUNet_MAE_pretrained"


def pretraining_results_folder(results: str | os.PathLike, dataset_name: str, trainer_name: str, plans_name: str,
                       configuration: str) -> Path:
    """nnU-Net's results folder of a fold-`all` pre-training."""
    return Path(results, dataset_name, f"{trainer_name}__{plans_name}__{configuration}", "fold_all")


def locate_pretrained_checkpoint(folder: Path, pretrain_command: str, wanted_by: str, folder_holds: str
                                 ) -> tuple[Path, str]:
    """(checkpoint file, why this one): `nnUNet_MAE_pretrained` wins; else `folder`/checkpoint_final.pth, the
    pre-training `folder_holds` describes."""
    given = os.environ.get(PRETRAINED_ENV)
    if given:
        if not Path(given).is_file():
            raise FileNotFoundError(f"{PRETRAINED_ENV}={given} does not point to a file. Give the path of a "
                                    f"pre-training checkpoint (…/fold_all/checkpoint_final.pth).")
        return Path(given), f"named by {PRETRAINED_ENV}"
    final = folder / "checkpoint_final.pth"
    if final.is_file():
        return final, f"found automatically: {folder_holds}"
    found = sorted(p.name for p in folder.glob("checkpoint_*.pth")) if folder.is_dir() else []
    hint = (f" Found only {', '.join(found)}: the pre-training has not finished; finish it with "
            f"`{pretrain_command} --c`." if found else f" Run the pre-training first: `{pretrain_command}`.")
    raise FileNotFoundError(f"No pre-trained encoder for {wanted_by}: {final} does not exist.{hint} "
                            f"Or name a checkpoint file with `export {PRETRAINED_ENV}=/path/to/checkpoint.pth`, "
                            f"or give it to nnUNetv2_train with `-pretrained_weights FILE`.")
