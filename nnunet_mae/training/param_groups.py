"""AdamW parameter groups: no weight decay on biases, norms and embeddings; optional layer-wise LR decay.

Layer-wise decay as in BEiT/MAE fine-tuning: the stem and position embedding are layer 0, encoder
block i is layer i + 1, everything after the encoder (final norm, decoder, head) is layer depth + 1;
a parameter of layer l gets lr_scale = decay ** (depth + 1 - l).
"""

from __future__ import annotations

from torch import nn

NO_DECAY_NAMES = ("pos_embed", "mask_token")


def encoder_layer_id(name: str, depth: int) -> int:
    if name.startswith("encoder.patch_embed") or name.startswith("encoder.pos_embed"):
        return 0
    if name.startswith("encoder.blocks."):
        return int(name.split(".")[2]) + 1
    return depth + 1


def build_param_groups(network: nn.Module, *, weight_decay: float, layer_decay: float | None = None,
                       depth: int | None = None) -> list[dict]:
    """Groups for AdamW; only parameters that require gradients are included."""
    if layer_decay is not None and depth is None:
        raise ValueError("layer_decay needs the encoder depth.")
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in network.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim <= 1 or any(n in name for n in NO_DECAY_NAMES)
        layer = encoder_layer_id(name, depth) if layer_decay is not None else 0
        scale = layer_decay ** (depth + 1 - layer) if layer_decay is not None else 1.0
        key = (layer, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay, "lr_scale": scale}
        groups[key]["params"].append(param)
    # highest rate first: nnU-Net logs and plots param_groups[0]["lr"] as "the" learning rate
    return sorted(groups.values(), key=lambda g: -g["lr_scale"])
