"""nnU-Net trainer subclasses (thin) and their optimisation helpers.

Trainer classes are imported from `nnunet_mae.training.trainers`; this package itself stays light.
"""
