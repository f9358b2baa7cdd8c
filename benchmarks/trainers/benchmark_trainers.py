"""Trainer variants with the fixed budgets of the benchmark protocols (an nnUNet_extTrainer folder).

CPU protocol: pre-training 12 epochs x 50 iterations; segmentation 8 epochs x 25 iterations (+ 10 validation
iterations per epoch). GPU protocol: pre-training 200 x 250; segmentation 100 x 250. Same batch and patch as
nnU-Net plans them; every segmentation arm gets the same number of iterations.
"""

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.primus.primus_trainers import nnUNet_Primus_S_Trainer

from nnunet_mae.training.schedules import Schedule
from nnunet_mae.training.trainers import (nnUNetTrainerGMIMFinetune, nnUNetTrainerGMIMPretrain,
                                          nnUNetTrainerMAEFinetune, nnUNetTrainerMAEPretrain, nnUNetTrainerViT)

BUDGETS = {
    "cpu": {"pretrain": (12, 50), "segment": (8, 25), "val_iterations": 10},
    "gpu": {"pretrain": (200, 250), "segment": (100, 250), "val_iterations": 50},
}


def _budget(protocol: str, kind: str) -> type[Schedule]:
    epochs, iterations = BUDGETS[protocol][kind]

    class Budget(Schedule):
        num_epochs, val_iterations = epochs, BUDGETS[protocol]["val_iterations"]
        png_every = max(1, epochs // 4)

        def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
            super().__init__(plans, configuration, fold, dataset_json, device)
            if hasattr(self, "warmup_duration_whole_net"):  # Primus: keep its warm-up inside the budget
                self.warmup_duration_whole_net = max(1, self.num_epochs // 20)

    Budget.iterations = iterations
    return Budget


for _protocol in BUDGETS:
    _segment, _pretrain = _budget(_protocol, "segment"), _budget(_protocol, "pretrain")
    _classes = {
        f"nnUNetTrainer_bench{_protocol}": (_segment, nnUNetTrainer, {}),
        f"nnUNet_Primus_S_Trainer_bench{_protocol}": (_segment, nnUNet_Primus_S_Trainer, {}),
        f"nnUNetTrainerViT_bench{_protocol}": (_segment, nnUNetTrainerViT, {}),
        f"nnUNetTrainerMAEPretrain_bench{_protocol}": (
            _pretrain, nnUNetTrainerMAEPretrain, {"finetune_trainer_name": f"nnUNetTrainerMAEFinetune_bench{_protocol}"}),
        f"nnUNetTrainerMAEFinetune_bench{_protocol}": (
            _segment, nnUNetTrainerMAEFinetune, {"pretrain_trainer_name": f"nnUNetTrainerMAEPretrain_bench{_protocol}"}),
        f"nnUNetTrainerGMIMPretrain_bench{_protocol}": (
            _pretrain, nnUNetTrainerGMIMPretrain, {"finetune_trainer_name": f"nnUNetTrainerGMIMFinetune_bench{_protocol}"}),
        f"nnUNetTrainerGMIMFinetune_bench{_protocol}": (
            _segment, nnUNetTrainerGMIMFinetune, {"pretrain_trainer_name": f"nnUNetTrainerGMIMPretrain_bench{_protocol}"}),
    }
    for _name, (_mixin, _base, _attrs) in _classes.items():
        globals()[_name] = type(_name, (_mixin, _base), dict(_attrs))
