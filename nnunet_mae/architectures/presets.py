"""ViT size presets (embed_dim, depth, num_heads), named as in DeiT/ViT.

Parameter counts of the encoder alone (stem for one input channel and 8^3 tokens, no position
embedding) are printed by `python -m nnunet_mae.architectures.presets` and listed in
documentation/reference.md.
"""

from __future__ import annotations

VIT_PRESETS: dict[str, dict[str, int]] = {
    "T": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "S": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "B": {"embed_dim": 768, "depth": 12, "num_heads": 12},
}


def vit_preset(name: str) -> dict[str, int]:
    if name not in VIT_PRESETS:
        raise ValueError(f"Unknown ViT preset {name!r}; choose one of {sorted(VIT_PRESETS)}.")
    return dict(VIT_PRESETS[name])


if __name__ == "__main__":  # pragma: no cover - documentation helper
    from nnunet_mae.architectures.vit import ViTEncoder

    for name, cfg in VIT_PRESETS.items():
        enc = ViTEncoder(input_channels=1, input_shape=(64, 64, 64), token_size=8, pos_embed="sincos", **cfg)
        n = sum(p.numel() for p in enc.parameters())
        print(f"{name}: embed_dim={cfg['embed_dim']} depth={cfg['depth']} heads={cfg['num_heads']} "
              f"encoder params={n / 1e6:.1f} M")
