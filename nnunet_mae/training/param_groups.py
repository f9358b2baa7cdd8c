"""AdamW parameter groups: no weight decay on biases, norms and embeddings; optional layer-wise LR decay.

Layer-wise decay as in BEiT/MAE fine-tuning: the stem and position embedding are layer 0, encoder
block i is layer i + 1, everything after the encoder's blocks (final norm, decoder, head) is layer depth + 1;
a parameter of layer l gets lr_scale = decay ** (depth + 1 - l). Which names are stem and blocks is the
network's `EncoderLayout` (ViT: `encoder.blocks.i`; PrimusV3: `eva.blocks.i`).
"""

from __future__ import annotations

from torch import nn

from nnunet_mae.architectures.encoder_layout import encoder_layout

NO_DECAY_NAMES = ("pos_embed", "mask_token")


def build_param_groups(network: nn.Module, *, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """Groups for AdamW; only parameters that require gradients are included."""
    layout = encoder_layout(network)
    depth = layout.depth(network)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in network.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim <= 1 or any(n in name for n in NO_DECAY_NAMES)
        layer = layout.layer_id(name, depth) if layer_decay is not None else 0
        scale = layer_decay ** (depth + 1 - layer) if layer_decay is not None else 1.0
        key = (layer, no_decay)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay, "lr_scale": scale}
        groups[key]["params"].append(param)
    # highest rate first: nnU-Net logs and plots param_groups[0]["lr"] as "the" learning rate
    return sorted(groups.values(), key=lambda g: -g["lr_scale"])
