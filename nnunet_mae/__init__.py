"""nnunet_mae: ViT segmentation and masked-autoencoder self-pre-training for nnU-Net v2.

Importing this package is cheap on purpose (no torch import): the `.pth` hook that registers the
trainer folder with nnU-Net runs at every interpreter start.
"""

__version__ = "0.2.0"
