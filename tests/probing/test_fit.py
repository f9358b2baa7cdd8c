import math

import pytest
import torch

from nnunet_mae.probing.fit import (IGNORE, DiceCounter, VoxelHead, features_at, run_probe, sample_voxels,
                                    weighted_mean)

SPATIAL = (16, 16, 16)


def crops(n, seed):
    """Labels: two boxes at random places per crop (classes 1, 2), a padded border (IGNORE)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.zeros(n, *SPATIAL, dtype=torch.long)
    for i in range(n):
        for k in (1, 2):
            a = torch.randint(0, 10, (3,), generator=g)
            labels[i, a[0]:a[0] + 6, a[1]:a[1] + 6, a[2]:a[2] + 6] = k
    labels[:, :1] = IGNORE
    return labels


def label_fraction_features(labels, noise=0.1, seed=0):
    """A 4x4x4 token grid whose features carry each token's class fractions (what a good encoder would encode)."""
    g = torch.Generator().manual_seed(seed)
    onehot = torch.nn.functional.one_hot(labels.clamp_min(0), 3).movedim(-1, 1).float()
    fractions = torch.nn.functional.avg_pool3d(onehot, 4)  # (N, 3, 4, 4, 4)
    extra = torch.randn(labels.shape[0], 5, 4, 4, 4, generator=g)
    return [torch.cat([fractions, extra], 1) + noise * torch.randn(labels.shape[0], 8, 4, 4, 4, generator=g)]


def noise_features(n, seed=0):
    return [torch.randn(n, 8, 4, 4, 4, generator=torch.Generator().manual_seed(seed))]


def batches(features, labels, size=3):
    return lambda: [([f[i:i + size] for f in features], labels[i:i + size]) for i in range(0, len(labels), size)]


def test_features_that_encode_the_labels_score_high_and_noise_scores_low():
    fit_labels, score_labels = crops(12, 0), crops(8, 1)
    good = run_probe(batches(label_fraction_features(fit_labels), fit_labels),
                     batches(label_fraction_features(score_labels, seed=1), score_labels), 3)
    bad = run_probe(batches(noise_features(12), fit_labels), batches(noise_features(8, 1), score_labels), 3)
    assert min(good.dice) > 0.7
    assert max(bad.dice) < 0.35
    assert good.mean > bad.mean + 0.4


def test_the_mlp_head_reads_the_same_features():
    fit_labels, score_labels = crops(12, 0), crops(8, 1)
    good = run_probe(batches(label_fraction_features(fit_labels), fit_labels),
                     batches(label_fraction_features(score_labels, seed=1), score_labels), 3, head="mlp")
    assert min(good.dice) > 0.6


def test_same_seed_same_result_and_the_global_random_state_is_untouched():
    labels = crops(6, 0)
    feats = label_fraction_features(labels, noise=1.0)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = run_probe(batches(feats, labels), batches(feats, labels), 3, seed=5)
    assert torch.rand(1) == expected_next
    b = run_probe(batches(feats, labels), batches(feats, labels), 3, seed=5)
    assert a.dice == b.dice


def test_features_at_matches_trilinear_upsampling():
    f = torch.randn(2, 5, 3, 4, 2)
    voxels = torch.randint(0, 12 * 16 * 8, (200,))
    upsampled = torch.nn.functional.interpolate(f, size=(12, 16, 8), mode="trilinear", align_corners=False)
    assert torch.allclose(features_at([f], 1, voxels, (12, 16, 8)), upsampled[1].flatten(1)[:, voxels].T, atol=1e-5)


def test_linear_logits_on_the_grid_equal_classifying_upsampled_voxels():
    f = [torch.randn(1, 4, 2, 2, 2), torch.randn(1, 3, 8, 8, 8)]
    head = VoxelHead(torch.randn(7), torch.rand(7) + 0.5, 3)
    head.offset.copy_(torch.tensor([0.1, -0.2, 0.3]))
    every = torch.arange(8 ** 3)
    per_voxel = head(features_at(f, 0, every, (8, 8, 8))).T.reshape(1, 3, 8, 8, 8)
    assert torch.allclose(head.logits(f, (8, 8, 8)), per_voxel, atol=1e-4)


def test_sampling_takes_every_class_and_undoes_its_share():
    labels = crops(4, 0)
    sample = sample_voxels(batches(noise_features(4), labels)(), 3, per_crop=300, generator=torch.Generator())
    counts = torch.bincount(sample.y, minlength=3)
    assert (counts == counts[0]).all()  # stratified: the same number per class
    assert IGNORE not in sample.y.tolist()
    share = torch.bincount(labels[labels != IGNORE], minlength=3).double()
    assert torch.allclose(sample.log_ratio.double(), (share / share.sum()).log() - math.log(1 / 3), atol=1e-5)


def test_dice_counts_all_crops_together_and_leaves_out_ignored_voxels():
    counter = DiceCounter(3)
    labels = torch.tensor([[1, 1, 2, IGNORE]])
    counter.update(torch.tensor([[1, 0, 2, 2]]), labels)
    counter.update(torch.tensor([[0, 0]]), torch.tensor([[0, 0]]))
    d1, d2 = counter.dice()
    assert d1 == pytest.approx(2 * 1 / (1 + 2)) and d2 == pytest.approx(1.0)
    assert math.isnan(DiceCounter(3).dice()[0])


def test_no_labelled_voxel_is_a_clear_error():
    labels = torch.full((2, *SPATIAL), IGNORE)
    with pytest.raises(ValueError, match="no labelled voxel"):
        run_probe(batches(noise_features(2), labels), batches(noise_features(2), labels), 3)


def test_weighted_mean_weights_values_and_skips_labels_a_fold_does_not_hold():
    assert weighted_mean([(2, 0.5), (1, 0.2)]) == pytest.approx(0.4)
    assert weighted_mean([(2, 0.5), (1, float("nan"))]) == pytest.approx(0.5)
    assert math.isnan(weighted_mean([(2, float("nan"))]))
