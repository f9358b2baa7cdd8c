"""Pure nn.Modules (no nnU-Net imports): ViT encoder, segmentation decoders, MAE wrapper, presets."""

from nnunet_mae.architectures.mae import MAEDecoder, MAEPretrainingNetwork
from nnunet_mae.architectures.presets import VIT_PRESETS, vit_preset
from nnunet_mae.architectures.segmentation import ViTSegmentationNetwork
from nnunet_mae.architectures.vit import ViTEncoder

__all__ = [
    "MAEDecoder",
    "MAEPretrainingNetwork",
    "VIT_PRESETS",
    "ViTEncoder",
    "ViTSegmentationNetwork",
    "vit_preset",
]
