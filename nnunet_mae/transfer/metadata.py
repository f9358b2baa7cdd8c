"""The `nnunet_mae` entry of every checkpoint: what weight transfer needs to know about the network that wrote it,
and the check whether an encoder of one checkpoint fits another network, before any tensor is touched.

Written by every trainer of the package (`nnUNetTrainerViT.transfer_metadata`), read by the fine-tuning trainers.
Stored as a plain dict (format_version 1), so checkpoints stay readable with `weights_only=True`.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from nnunet_mae.transfer.checkpoint_io import METADATA_KEY
from nnunet_mae.transfer.encoder_transfer import TransferError

FORMAT_VERSION = 1


@dataclass
class TransferMetadata:
    trainer_name: str
    network_kwargs: dict
    token_grid: tuple[int, ...]
    token_order: str
    patch_size: list[int]
    spacing: list[float]
    normalization_schemes: list[str]
    use_mask_for_norm: list[bool]
    channel_names: list[str]
    input_channels: int
    dataset_name: str
    configuration: str
    masking: dict | None = None
    backbone: str = "vit"  # checkpoints written before PrimusV3 hold ViTs and have no entry
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)  # entries of newer versions, kept when a checkpoint is rewritten

    def to_dict(self) -> dict:
        values = asdict(self)
        extra = values.pop("extra")
        return {**extra, **values}

    @classmethod
    def from_dict(cls, values: Mapping, path="the checkpoint") -> "TransferMetadata":
        known = set(cls.__dataclass_fields__) - {"extra"}
        required = {k for k, f in cls.__dataclass_fields__.items() if f.default is f.default_factory is MISSING}
        missing = sorted(required - set(values))
        if missing:
            raise TransferError(f"The '{METADATA_KEY}' metadata of {path} lacks {', '.join(missing)}: it was "
                                f"written by another version of nnunet_mae. Pre-train again with this version.")
        return cls(**{k: v for k, v in values.items() if k in known},
                   extra={k: v for k, v in values.items() if k not in known})

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping, path, pretrain_trainer_name: str) -> "TransferMetadata":
        values = checkpoint.get(METADATA_KEY)
        if values is None:
            raise TransferError(f"{path} carries no '{METADATA_KEY}' metadata: it was not written by an nnunet_mae "
                                f"trainer. Pre-train with {pretrain_trainer_name}, or load nnU-Net weights with "
                                f"`nnUNetv2_train ... -pretrained_weights FILE` and a trainer whose network matches.")
        return cls.from_dict(values, path)

    @property
    def spatial_dims(self) -> int:
        """Of the network built (its input_shape), which is what the weights fit."""
        return len(np.atleast_1d(self.network_kwargs.get("input_shape", self.patch_size)))

    @staticmethod
    def token_grid_of(network_kwargs: dict) -> tuple[int, ...] | None:
        """The token grid of a network built from `network_kwargs` (None for networks without tokens)."""
        if "token_size" not in network_kwargs:
            return None
        shape, token = network_kwargs["input_shape"], np.atleast_1d(network_kwargs["token_size"])
        token = list(token) * len(shape) if len(token) == 1 else list(token)
        return tuple(int(s) // int(t) for s, t in zip(shape, token))

    def describe(self) -> str:
        return (f"pre-trained by {self.trainer_name} on {self.dataset_name} {self.configuration}, patch "
                f"{self.patch_size}")

    def check_fits(self, own: "TransferMetadata", encoder_settings: Sequence[str], path, pretrain_command: str,
                   fix: str = "Pre-train again with the fine-tuning trainer's settings.",
                   finetuning_trainers: Callable[[str], Sequence[str]] | None = None) -> None:
        """Raise a TransferError saying what differs and what to do when this (pre-trained) encoder cannot be
        loaded into the network `own` describes: dimensionality, backbone, then the backbone's `encoder_settings`.
        `fix` may name {pretrain_command}, the command that pre-trains for the fine-tuning trainer;
        `finetuning_trainers(backbone)` names the trainers that fine-tune another backbone's encoder (the caller
        knows the registry: transfer/ sits below backbones/)."""
        theirs_ndim, own_ndim = self.spatial_dims, own.spatial_dims
        if theirs_ndim != own_ndim:
            raise TransferError(
                f"{path} holds a {theirs_ndim}D encoder (pre-trained on configuration {self.configuration!r} of "
                f"{self.dataset_name}); {own.configuration!r} needs a {own_ndim}D one. Pre-train on the configuration "
                f"you fine-tune: `{pretrain_command}`.")
        if self.backbone != own.backbone:
            names = ", ".join(finetuning_trainers(self.backbone)) if finetuning_trainers else ""
            raise TransferError(
                f"{path} holds a {self.backbone} encoder (pre-trained by {self.trainer_name}); {own.trainer_name} "
                f"builds a {own.backbone} network. Fine-tune with a fine-tuning trainer of the {self.backbone} "
                f"backbone{': ' + names if names else ''}.")
        theirs_kwargs, own_kwargs = self.network_kwargs, own.network_kwargs
        differing = [k for k in encoder_settings if k in theirs_kwargs and
                     not _same(theirs_kwargs[k], own_kwargs.get(k))]
        if differing:
            theirs = ", ".join(f"{k} {_short(theirs_kwargs[k])}" for k in differing)
            ours = ", ".join(f"{k} {_short(own_kwargs.get(k))}" for k in differing)
            raise TransferError(
                f"{path} was pre-trained by {self.trainer_name} with {theirs}; {own.trainer_name} builds {ours}. "
                f"{fix.format(pretrain_command=pretrain_command)}")


def _same(a, b) -> bool:
    """Equal settings: numbers and (nested) sequences of numbers as arrays (a token size stored as a list equals
    the tuple), anything else (names, dicts of network arguments) as JSON."""
    try:
        x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        return x.shape == y.shape and bool(np.all(x == y))
    except (TypeError, ValueError):
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _short(value, limit: int = 200) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= limit else text[:limit] + " ..."
