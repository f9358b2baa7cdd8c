"""Re-exports of every nnunet_mae trainer, for nnU-Net's lookup by class name.

nnU-Net imports this file as a top-level module from the `nnUNet_extTrainer` folder; the classes
themselves live (once) in `nnunet_mae.training`.
"""

from nnunet_mae.training.trainers import *  # noqa: F401,F403
from nnunet_mae.training.trainers import __all__  # noqa: F401
