import pytest
import torch

from nnunet_mae.masking import random_token_masking


def test_exact_visible_count_and_consistent_outputs():
    ids_keep, ids_restore, mask = random_token_masking(4, 175, 0.75)
    assert ids_keep.shape == (4, 44)
    assert torch.all(mask.sum(1) == 175 - 44)
    assert torch.all(torch.gather(mask, 1, ids_keep) == 0)  # kept tokens are the unmasked ones
    # ids_restore inverts the shuffle: [kept, masked] put back in token order gives the mask
    shuffled = torch.cat([torch.zeros(4, 44), torch.ones(4, 131)], dim=1)
    assert torch.equal(torch.gather(shuffled, 1, ids_restore), mask)


def test_masks_differ_between_samples_and_seed_reproduces():
    _, _, mask = random_token_masking(8, 100, 0.75, generator=torch.Generator().manual_seed(0))
    assert len({tuple(m.tolist()) for m in mask}) == 8
    _, _, again = random_token_masking(8, 100, 0.75, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)


def test_invalid_ratio():
    with pytest.raises(ValueError, match="mask_ratio"):
        random_token_masking(1, 10, 1.0)
