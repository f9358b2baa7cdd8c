"""training/encoder_probe.py: the probe cross-validated over nnU-Net's folds."""

import pytest
import torch

from nnunet_mae.probing.fit import ProbeResult
from nnunet_mae.training.encoder_probe import ProbeSetup


class FoldsOfKnownDice(ProbeSetup):
    """Fold k has `val_counts[k]` validation cases and scores `dice[k]`: what probe_folds combines."""
    val_counts = {0: 2, 1: 2, 2: 1}
    dice = {0: [0.6, 0.1], 1: [0.3, float("nan")], 2: [0.0, 0.4]}

    def cases(self, seed):
        return ["train"], [f"val{i}" for i in range(self.val_counts[self.fold])]

    def probe(self, network, read, *, seed, device, autocast=None, with_train_dice=False):
        return ProbeResult(dice=list(self.dice[self.fold]), seconds=1.0)


def test_the_cross_validated_probe_weights_each_fold_by_its_validation_cases():
    setup = FoldsOfKnownDice(dataset_folder="", dataset_class=object, splits_file="", patch_size=(8, 8, 8),
                             label_values=[0, 1, 2])
    result = setup.probe_folds([0, 1, 2], torch.nn.Identity(), None, seed=0, device=torch.device("cpu"))
    assert result.dice[0] == pytest.approx((2 * 0.6 + 2 * 0.3 + 0.0) / 5)
    assert result.dice[1] == pytest.approx((2 * 0.1 + 0.4) / 3)  # fold 1 holds no label 2: not counted
    assert result.seconds == 3.0
    single = setup.probe_folds([1], torch.nn.Identity(), None, seed=0, device=torch.device("cpu"))
    assert single.dice[0] == pytest.approx(0.3)  # one fold: that fold's probe
