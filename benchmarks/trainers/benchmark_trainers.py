"""Trainer variants with the fixed budgets of benchmarks/segmentation_quality.py (an nnUNet_extTrainer folder).

CPU protocol: pre-training 12 epochs x 50 iterations; segmentation 8 epochs x 25 iterations (+ 10 validation
iterations per epoch). GPU protocol: pre-training 200 x 250; segmentation 100 x 250. Same batch and patch as
nnU-Net plans them; every segmentation arm gets the same number of iterations. Variants are made the package's
one way: a budget mixin (training/schedules.py) in front of the trainer, as real classes.
"""

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.primus.primus_trainers import nnUNet_Primus_S_Trainer

from nnunet_mae.training.schedules import Schedule
from nnunet_mae.training.trainers import (nnUNetTrainerGMIMFinetune, nnUNetTrainerGMIMPretrain,
                                          nnUNetTrainerMAEFinetune, nnUNetTrainerMAEPretrain, nnUNetTrainerViT)


class _Budget(Schedule):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if hasattr(self, "warmup_duration_whole_net"):  # Primus: keep its warm-up inside the budget
            self.warmup_duration_whole_net = max(1, self.num_epochs // 20)


class SegmentCPU(_Budget):
    num_epochs, iterations, val_iterations, png_every = 8, 25, 10, 2


class PretrainCPU(_Budget):
    num_epochs, iterations, val_iterations, png_every = 12, 50, 10, 3


class SegmentGPU(_Budget):
    num_epochs, iterations, val_iterations, png_every = 100, 250, 50, 25


class PretrainGPU(_Budget):
    num_epochs, iterations, val_iterations, png_every = 200, 250, 50, 50


class nnUNetTrainer_benchcpu(SegmentCPU, nnUNetTrainer):
    pass


class nnUNet_Primus_S_Trainer_benchcpu(SegmentCPU, nnUNet_Primus_S_Trainer):
    pass


class nnUNetTrainerViT_benchcpu(SegmentCPU, nnUNetTrainerViT):
    pass


class nnUNetTrainerMAEPretrain_benchcpu(PretrainCPU, nnUNetTrainerMAEPretrain):
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_benchcpu"


class nnUNetTrainerMAEFinetune_benchcpu(SegmentCPU, nnUNetTrainerMAEFinetune):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_benchcpu"


class nnUNetTrainerGMIMPretrain_benchcpu(PretrainCPU, nnUNetTrainerGMIMPretrain):
    finetune_trainer_name = "nnUNetTrainerGMIMFinetune_benchcpu"


class nnUNetTrainerGMIMFinetune_benchcpu(SegmentCPU, nnUNetTrainerGMIMFinetune):
    pretrain_trainer_name = "nnUNetTrainerGMIMPretrain_benchcpu"


class nnUNetTrainer_benchgpu(SegmentGPU, nnUNetTrainer):
    pass


class nnUNet_Primus_S_Trainer_benchgpu(SegmentGPU, nnUNet_Primus_S_Trainer):
    pass


class nnUNetTrainerViT_benchgpu(SegmentGPU, nnUNetTrainerViT):
    pass


class nnUNetTrainerMAEPretrain_benchgpu(PretrainGPU, nnUNetTrainerMAEPretrain):
    finetune_trainer_name = "nnUNetTrainerMAEFinetune_benchgpu"


class nnUNetTrainerMAEFinetune_benchgpu(SegmentGPU, nnUNetTrainerMAEFinetune):
    pretrain_trainer_name = "nnUNetTrainerMAEPretrain_benchgpu"


class nnUNetTrainerGMIMPretrain_benchgpu(PretrainGPU, nnUNetTrainerGMIMPretrain):
    finetune_trainer_name = "nnUNetTrainerGMIMFinetune_benchgpu"


class nnUNetTrainerGMIMFinetune_benchgpu(SegmentGPU, nnUNetTrainerGMIMFinetune):
    pretrain_trainer_name = "nnUNetTrainerGMIMPretrain_benchgpu"
