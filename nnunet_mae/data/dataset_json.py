"""Facts read from an nnU-Net dataset.json."""

from __future__ import annotations


def channel_names(dataset_json: dict) -> dict:
    """The image channels {"0": "MRI", ...}: `channel_names`, or `modality` in older dataset.json files."""
    return dict(dataset_json.get("channel_names", dataset_json.get("modality", {})))
