"""Pre-training losses: reconstruction on masked tokens; Barlow-Twins-style cross-correlation (GMIM); uniformity of
the encoder's tokens (against collapse)."""

from nnunet_mae.losses.cross_correlation import cross_correlation_loss
from nnunet_mae.losses.reconstruction import masked_reconstruction_loss, reconstruction_targets
from nnunet_mae.losses.uniformity import token_uniformity_loss

__all__ = ["cross_correlation_loss", "masked_reconstruction_loss", "reconstruction_targets", "token_uniformity_loss"]
