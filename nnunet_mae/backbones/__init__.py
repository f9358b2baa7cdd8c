"""The encoder families a trainer is built on, chosen by one trainer attribute, `backbone`; one module each.

A family is a class with static/class methods only (no state), holding everything that differs between families:

- `name`, `spatial_dims` (2D/3D), `methods` (the pre-training methods it supports: "mae", "gmim");
- `variants(kind)`: trainer-name suffix -> class attributes of the trainers of `kind` ("segmentation",
  "pretraining", "finetuning") on this family (e.g. "PrimusV3B": {"backbone": "primusv3", "primus_size": "B"});
  training/trainers.py makes every trainer of the family's methods with each;
- `encoder_settings`: entries of `network_kwargs` that must match between pre-training and fine-tuning, and
  `mismatch_fix`: what to tell a user when they do not;
- `architecture_kwargs(trainer_class, configuration_manager)`: the JSON-able description of the network, stored in
  every checkpoint's transfer metadata; `token_size(trainer_class, configuration_manager)`: the masking unit;
- `segmentation_network(kwargs, deep_supervision)`, `mae_network(kwargs, mae_decoder)`: the networks;
- `mae_forward(network, images, ids_keep, ids_restore, mask, token_size)`: predictions (B, L, P) of every token's
  voxels, in `architectures.tokens.patchify` order;
- `probe_features(network, images)`: the feature maps the segmentation network's decoder reads (the probe's input);
- optional, MAE defaults measured for the family: `mae_loss_on_visible` (the loss on every token in training
  steps; False where absent), `mae_uniformity_weight` (0 where absent), and `mae_encoder_output(network)` (the module
  whose output is the encoder's tokens in the MAE forward, where a uniformity term reads them);
- `training_recipe(kind)`: trainer attributes for "segmentation", "pretraining" or "finetuning" that differ from
  the ViT recipe of the base trainer (optimiser, learning rate, deep supervision ...).

A new backbone: one module here and one entry in BACKBONES.
"""

from __future__ import annotations

from nnunet_mae.backbones.cnn import CNN
from nnunet_mae.backbones.primusv3 import PrimusV3
from nnunet_mae.backbones.vit import ViT

BACKBONES = {family.name: family for family in (ViT, PrimusV3, CNN)}


def backbone_named(name: str):
    if name not in BACKBONES:
        raise ValueError(f"backbone = {name!r}; choose one of {sorted(BACKBONES)}.")
    return BACKBONES[name]


def backbones_for(ndim: int | None = None, method: str | None = None) -> list:
    """The families that build `ndim`-D networks and support pre-training `method` (either may be None)."""
    return [f for f in BACKBONES.values()
            if (ndim is None or ndim in f.spatial_dims) and (method is None or method in f.methods)]


def finetuning_trainer_names(name: str) -> list[str]:
    """The MAE fine-tuning trainers of backbone `name` (the base names, without schedule or precision)."""
    return [f"nnUNetTrainerMAEFinetune{'_' + suffix if suffix else ''}"
            for suffix in backbone_named(name).variants("finetuning")]
