import numpy as np
import pytest

from nnunet_mae.probing.crops import crop_case, labelled_crops
from nnunet_mae.probing.fit import IGNORE


class FakeDataset:
    """nnU-Net's dataset interface: load_case(identifier) -> data (C, *shape), seg (1, *shape), prev, properties."""

    def __init__(self, cases):
        self.cases = cases

    def load_case(self, identifier):
        data, seg = self.cases[identifier]
        return data, seg, None, {}


def case(shape=(10, 12, 8), seed=0, labels=(0, 1, 4)):
    rng = np.random.default_rng(seed)
    seg = rng.choice(labels, size=shape).astype(np.int16)[None]
    data = rng.normal(size=(2, *shape)).astype(np.float32)
    return data, seg


def test_crop_pads_outside_the_case():
    data, seg = case()
    image, label = crop_case(data, seg[0], centre=(0, 0, 0), patch=(4, 4, 4))
    assert image.shape == (2, 4, 4, 4) and (label[:2] == -2).all() and (image[:, :2] == 0).all()
    assert np.array_equal(image[:, 2:, 2:, 2:], data[:, :2, :2, :2])


def test_labels_become_class_indices_and_crops_are_fixed_by_the_seed():
    dataset = FakeDataset({"a": case(seed=1), "b": case(seed=2)})
    crops = labelled_crops(dataset, ["b", "a"], (8, 8, 8), crops_per_case=2, seed=7, label_values=[0, 1, 4])
    again = labelled_crops(dataset, ["a", "b"], (8, 8, 8), crops_per_case=2, seed=7, label_values=[0, 1, 4])
    other = labelled_crops(dataset, ["a", "b"], (8, 8, 8), crops_per_case=2, seed=8, label_values=[0, 1, 4])
    assert crops.cases == ["a", "a", "b", "b"] and crops.images.shape == (4, 2, 8, 8, 8)
    assert set(np.unique(crops.labels)) <= {IGNORE, 0, 1, 2}  # label 4 is class 2
    assert np.array_equal(crops.images, again.images) and not np.array_equal(crops.images, other.images)


def test_foreground_crops_are_centred_on_a_labelled_voxel():
    shape = (30, 30, 30)
    seg = np.zeros((1, *shape), np.int16)
    seg[0, 25, 3, 20] = 1
    dataset = FakeDataset({"a": (np.zeros((1, *shape), np.float32), seg)})
    crops = labelled_crops(dataset, ["a"], (6, 6, 6), crops_per_case=1, seed=0, label_values=[0, 1])
    assert crops.labels[0, 3, 3, 3] == 1


def test_ignore_label_and_unlisted_labels():
    data, seg = case(labels=(0, 1, 3))
    dataset = FakeDataset({"a": (data, seg)})
    crops = labelled_crops(dataset, ["a"], (20, 24, 16), seed=0, label_values=[0, 1], ignore_label=3)
    padding = 20 * 24 * 16 - seg.size  # the whole case lies inside a crop twice its size
    assert (crops.labels[0] == IGNORE).sum() == (seg == 3).sum() + padding
    assert (crops.labels[0] == 1).sum() == (seg == 1).sum()
    with pytest.raises(ValueError, match="label 3, which dataset.json does not list"):
        labelled_crops(dataset, ["a"], (10, 12, 8), seed=0, label_values=[0, 1])


def test_2d_patches_come_from_the_slice_through_the_centre():
    shape = (30, 20, 20)
    seg = np.zeros((1, *shape), np.int16)
    seg[0, 17, 4, 9] = 1
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(1, *shape)
    crops = labelled_crops(FakeDataset({"a": (data, seg)}), ["a"], (6, 6), crops_per_case=1, seed=0,
                           label_values=[0, 1])
    assert crops.images.shape == (1, 1, 6, 6) and crops.labels[0, 3, 3] == 1
    assert crops.images[0, 0, 3, 3] == data[0, 17, 4, 9]
