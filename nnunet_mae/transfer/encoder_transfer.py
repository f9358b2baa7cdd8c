"""Load a pre-trained encoder (stem + position embedding + blocks + final norm) into a fine-tuning network.

Which keys are the encoder, the position embedding and the stem's input convolutions is the network's
`EncoderLayout` (architectures/encoder_layout.py): `encoder.*` for the ViT, `down_projection.*` and `eva.*` for
DNA's Primus/PrimusV3. Rules (as nnssl/Primus fine-tuning):
- encoder keys with equal shapes are copied;
- the position embedding is resampled when the token grid differs (other patch size);
- a stem trained on 1 channel is repeated over C input channels and divided by C (a stem trained on
  C' > 1 channels only loads into C' channels);
- cascade (`image_channels` < the network's input channels): the stem is loaded into the image channels by
  the rules above, and the channels after them (the previous stage's one-hot segmentation) start at zero,
  so the pre-trained encoder first sees the images only;
- everything else in the source (segmentation decoder, MAE decoder, projector heads) is skipped, and
  the fine-tuning network keeps its fresh decoder and head.
The report lists what was loaded, adapted, skipped and missing, with shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from torch import nn

from nnunet_mae.architectures.encoder_layout import EncoderLayout, encoder_layout
from nnunet_mae.architectures.pos_embed import resample_pos_embed


class TransferError(RuntimeError):
    """The pre-trained encoder cannot be loaded into this network."""
    clear_refusal = True  # printed as one message by the trainers (training/clean_exit.py)


def _first(lines, shown: int = 6) -> list[str]:
    lines = list(lines)
    return lines[:shown] + ([f"  ... and {len(lines) - shown} more"] if len(lines) > shown else [])


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(s) for s in t.shape)


CHANNELS_WHY = "pre-training channels cannot be adapted"


@dataclass
class TransferReport:
    loaded: list[str] = field(default_factory=list)
    adapted: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    incompatible: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.incompatible

    def format(self) -> str:
        lines = [f"Encoder transfer: {len(self.loaded)} tensors loaded as they are, {len(self.adapted)} adapted, "
                 f"{len(self.skipped)} skipped, {len(self.missing)} missing, {len(self.incompatible)} incompatible."]
        lines += [f"  adapted  {k}: {why}" for k, why in self.adapted.items()]
        lines += _first(f"  missing  {k}" for k in self.missing)
        lines += _first(f"  incompatible {k}: {why}" for k, why in self.incompatible.items())
        prefixes = sorted({k.split(".")[0] for k in self.skipped})
        if prefixes:
            lines.append(f"  skipped (not part of the encoder): {len(self.skipped)} tensors under "
                         f"{', '.join(p + '.*' for p in prefixes)}")
        return "\n".join(lines)

    def raise_if_incomplete(self, source: str) -> None:
        if self.ok:
            return
        channels_only = not self.missing and all(CHANNELS_WHY in why for why in self.incompatible.values())
        fix = ("The images have another number of input channels than the pre-training's: pre-train on images with "
               "this dataset's channels (e.g. on this dataset), or on 1-channel images, whose stem is repeated over "
               "any number of channels." if channels_only else
               "Pre-train and fine-tune with the same ViT size and token size (trainer attributes vit_preset, "
               "token_size), or pre-train again for this configuration.")
        raise TransferError(f"The encoder in {source} does not fit this network.\n{self.format()}\n{fix}")


def transfer_encoder_weights(source_state: Mapping[str, torch.Tensor], target: nn.Module, *,
                             source_grid: Sequence[int] | None = None, target_grid: Sequence[int] | None = None,
                             image_channels: int | None = None, load: bool = True,
                             layout: EncoderLayout | None = None) -> TransferReport:
    """Copy encoder weights from `source_state` into `target` (in place unless `load=False`).

    `source_grid`/`target_grid` (token grids) are needed only when the position embedding must be resampled.
    `image_channels`: how many of the target's input channels are images (default: all); the rest start at zero.
    `layout`: the encoder's keys (default: the target network's own layout).
    """
    layout = layout or encoder_layout(target)
    target_state = target.state_dict()
    report = TransferReport()
    new_values: dict[str, torch.Tensor] = {}
    for key in source_state:
        if not layout.is_encoder(key):
            report.skipped[key] = "not part of the encoder"
    for key, wanted in target_state.items():
        if not layout.is_encoder(key):
            continue
        if key not in source_state:
            report.missing.append(key)
            continue
        value = source_state[key]
        if value.shape == wanted.shape:
            new_values[key] = value
            report.loaded.append(key)
            continue
        adapted = _adapted(key, value, wanted, layout, source_grid, target_grid, image_channels)
        if isinstance(adapted, str):
            report.incompatible[key] = adapted
        else:
            new_values[key], report.adapted[key] = adapted
    if load and new_values:
        with torch.no_grad():
            for key, value in new_values.items():
                target_state[key].copy_(value.to(target_state[key].dtype))
    return report


def _adapted(key: str, value: torch.Tensor, wanted: torch.Tensor, layout: EncoderLayout, source_grid, target_grid,
             image_channels: int | None) -> tuple[torch.Tensor, str] | str:
    """(the tensor adapted to the target's shape, how) for a resampled position embedding or a repeated stem, or
    why it cannot be adapted."""
    if key == layout.pos_embed_key and value.ndim == 3 and value.shape[-1] == wanted.shape[-1]:
        if source_grid is None or target_grid is None:
            return f"source {_shape(value)} vs target {_shape(wanted)}; token grids are needed to resample it"
        return (resample_pos_embed(value, source_grid, target_grid),
                f"resampled {_shape(value)} (grid {tuple(source_grid)}) -> {_shape(wanted)} "
                f"(grid {tuple(target_grid)})")
    if key in layout.stem_input_keys and (stem := _adapted_stem(value, wanted, image_channels)) is not None:
        return stem
    why = f"source {_shape(value)} vs target {_shape(wanted)}"
    if key in layout.stem_input_keys and value.shape[2:] != wanted.shape[2:]:
        why += " (different token size)"
    elif key in layout.stem_input_keys and value.shape[1] != wanted.shape[1]:
        why += (f" ({value.shape[1]} {CHANNELS_WHY} to {wanted.shape[1]}; only a "
                f"1-channel stem is repeated, and a cascade's segmentation channels are added)")
    return why


def _adapted_stem(value: torch.Tensor, wanted: torch.Tensor, image_channels: int | None
                  ) -> tuple[torch.Tensor, str] | None:
    """The stem weight adapted to `wanted`'s input channels and why, or None when it cannot be adapted."""
    if value.shape[0] != wanted.shape[0] or value.shape[2:] != wanted.shape[2:]:
        return None
    images = wanted.shape[1] if image_channels is None else image_channels
    source_channels, extra = value.shape[1], wanted.shape[1] - images
    if extra < 0 or source_channels not in (1, images):
        return None
    steps, source_shape = [], _shape(value)
    if source_channels != images:
        value = value.repeat(1, images, *([1] * (value.ndim - 2))) / images
        steps.append(f"1 input channel repeated over {images} and divided by {images}")
    if extra:
        value = torch.cat([value, value.new_zeros(value.shape[0], extra, *value.shape[2:])], dim=1)
        steps.append(f"{extra} channels of the previous stage's segmentation (cascade) added at zero")
    return value, "; ".join(steps) + f": {source_shape} -> {_shape(wanted)}"
