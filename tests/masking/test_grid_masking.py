import math

import numpy as np
import pytest
import torch

from nnunet_mae.masking.grid_masking import (candidate_cell_counts, cell_index_map, entropy_mask_ratios,
                                             grid_token_mask, hierarchical_ratios, hierarchical_remask)


def cell_entropy(images, token_size, cells, bins=32):
    """The (B, N) cell entropies `grid_token_mask` computes for fixed cells."""
    return grid_token_mask(images, token_size, cells=cells, bins=bins)[1]["cell_entropy"]


def checkerboard(block: int, size: int = 32, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """(B, 1, size^3): a 3D checkerboard of `block`^3 voxel blocks, alternately uniform noise and constant 0.5."""
    noise = torch.rand(batch, 1, size, size, size, generator=torch.Generator().manual_seed(seed))
    i = torch.arange(size) // block
    textured = (i[:, None, None] + i[None, :, None] + i[None, None, :]) % 2 == 1
    return torch.where(textured, noise, torch.full_like(noise, 0.5))


def half_noise(batch: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    """(B, 1, size^3): first half along axis 0 constant, second half uniform noise."""
    x = torch.rand(batch, 1, size, size, size, generator=torch.Generator().manual_seed(seed))
    x[:, :, : size // 2] = 0.3
    return x


def test_candidates_capped_deduplicated_and_2d():
    # every cell keeps at least 2 tokens per axis, so masks stay random inside cells
    assert candidate_cell_counts((16, 16, 16)) == [(2, 2, 2), (4, 4, 4), (8, 8, 8)]
    assert candidate_cell_counts((5, 7, 5)) == [(2, 2, 2), (2, 3, 2)]
    assert candidate_cell_counts((16, 40)) == [(2, 2), (4, 4), (8, 8), (8, 16)]
    assert candidate_cell_counts((1, 6)) == [(1, 2), (1, 3)]
    with pytest.raises(ValueError, match="grid"):
        candidate_cell_counts((4,))


def test_cell_index_map_floor_rule_non_divisible():
    ids = cell_index_map((5, 7, 5), (2, 4, 4)).view(5, 7, 5)
    along = lambda n, g: [i * g // n for i in range(n)]  # noqa: E731
    expected = np.array(along(5, 2))[:, None, None] * 16 + np.array(along(7, 4))[None, :, None] * 4 \
        + np.array(along(5, 4))[None, None, :]
    np.testing.assert_array_equal(ids.numpy(), expected)
    assert torch.bincount(ids.flatten()).tolist()[:4] == [3 * 2 * 2, 3 * 2 * 1, 3 * 2 * 1, 3 * 2 * 1]
    with pytest.raises(ValueError, match="cells"):
        cell_index_map((5, 7, 5), (2, 8, 2))


def test_cell_entropies_match_numpy_histogram():
    x = half_noise(batch=2, size=8)
    x[1] *= 5.0  # each sample uses its own [min, max]
    entropy = cell_entropy(x, (2, 2, 2), (2, 2, 2), bins=8)
    assert entropy.shape == (2, 8)
    for b in range(2):
        v = x[b, 0].numpy()
        for cell in range(8):
            i, j, k = cell // 4, cell // 2 % 2, cell % 2
            block = v[i * 4:(i + 1) * 4, j * 4:(j + 1) * 4, k * 4:(k + 1) * 4].ravel()
            idx = np.clip(((block - v.min()) * (8 / (v.max() - v.min()))).astype(int), 0, 7)
            p = np.bincount(idx, minlength=8) / block.size
            p = p[p > 0]
            assert entropy[b, cell].item() == pytest.approx(-(p * np.log(p)).sum(), abs=1e-5)
    assert torch.all(entropy[:, :4] == 0)  # constant half


def test_higher_entropy_cells_get_higher_ratios():
    x = half_noise()
    entropy = cell_entropy(x, (2, 2, 2), (2, 2, 2))
    ratios = entropy_mask_ratios(entropy)
    assert torch.all(ratios[:, 4:].min(1).values > ratios[:, :4].max(1).values)  # noise half vs constant half
    assert ratios.min().item() == pytest.approx(0.35) and ratios.max().item() == pytest.approx(0.65)
    assert ratios.mean().item() == pytest.approx(0.5)
    ranked = entropy_mask_ratios(torch.tensor([[3.0, 1.0, 2.0, 0.0, 2.0]]))  # tie 2.0: lower index ranks lower
    np.testing.assert_allclose(ranked.numpy(), [[0.65, 0.425, 0.5, 0.35, 0.575]], rtol=1e-6)
    with pytest.raises(ValueError, match="spread"):
        entropy_mask_ratios(entropy, base_ratio=0.8, spread=0.3)


@pytest.mark.parametrize("block, expected", [(32, (2, 2, 2)), (16, (4, 4, 4)), (8, (8, 8, 8))])
def test_grid_choice_follows_structure_scale(block, expected):
    # 64^3 voxels, 4^3 tokens -> 16^3 tokens. Blocks of `block` voxels match the cells of the expected grid
    # (CV = 1); coarser grids mix noise and constant evenly (CV ~ 0); finer grids tie on CV but pay G^-0.1.
    assert grid_token_mask(checkerboard(block, size=64), (4, 4, 4))[1]["cells"] == expected


def test_mask_counts_per_cell_are_rounded_ratios_times_size():
    x = half_noise(batch=3, size=10)  # 5^3 tokens of 2^3: cells of unequal size
    mask, info = grid_token_mask(x, (2, 2, 2), cells=(2, 2, 2), generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 125) and set(mask.unique().tolist()) <= {0.0, 1.0}
    sizes = np.bincount(info["cell_index"].numpy())
    assert sorted(set(sizes.tolist())) == [8, 12, 18, 27]
    expected = np.floor(info["cell_ratios"].numpy() * sizes + 0.5)
    per_cell = np.stack([np.bincount(info["cell_index"].numpy(), weights=m, minlength=8) for m in mask.numpy()])
    np.testing.assert_array_equal(per_cell, expected)
    np.testing.assert_array_equal(info["cell_mask_counts"].numpy(), expected)


def test_mask_positions_independent_across_samples_and_seeded():
    x = half_noise(batch=1, size=16).expand(4, -1, -1, -1, -1)  # identical samples
    mask, info = grid_token_mask(x, (2, 2, 2), generator=torch.Generator().manual_seed(1))
    assert info["cells"] == (2, 2, 2)  # half-constant volume: the 2^3 grid separates the halves best
    assert torch.all(mask.sum(1) == mask[0].sum())  # same counts ...
    assert len({tuple(m.tolist()) for m in mask}) == 4  # ... at different positions
    again, _ = grid_token_mask(x, (2, 2, 2), generator=torch.Generator().manual_seed(1))
    other, _ = grid_token_mask(x, (2, 2, 2), generator=torch.Generator().manual_seed(2))
    assert torch.equal(mask, again) and not torch.equal(mask, other)


def test_non_cubic_and_2d_grids():
    x3 = torch.rand(2, 2, 10, 14, 10, generator=torch.Generator().manual_seed(0))  # (5, 7, 5) tokens
    for cells in candidate_cell_counts((5, 7, 5)):
        mask, info = grid_token_mask(x3, (2, 2, 2), cells=cells, generator=torch.Generator().manual_seed(0))
        assert mask.shape == (2, 175) and info["cell_ratios"].shape == (2, math.prod(cells))
    mask, info = grid_token_mask(x3, (2, 2, 2))
    assert info["cells"] in candidate_cell_counts((5, 7, 5)) and 0.4 < mask.mean().item() < 0.6
    x2 = torch.rand(3, 1, 24, 40, generator=torch.Generator().manual_seed(0))  # (6, 10) tokens
    mask, info = grid_token_mask(x2, (4, 4), generator=torch.Generator().manual_seed(0))
    assert mask.shape == (3, 60) and info["cells"] in candidate_cell_counts((6, 10))
    assert torch.all(info["cell_mask_counts"].sum(1) == mask.sum(1))


def test_hierarchical_ratios_halve():
    assert hierarchical_ratios(0.5, 4) == [0.5, 0.25, 0.125, 0.0625]
    assert hierarchical_ratios(0.5, 0) == []
    assert hierarchical_ratios(0.3, 3, decay=0.8) == pytest.approx([0.3, 0.24, 0.192])
    with pytest.raises(ValueError, match="decay"):
        hierarchical_ratios(0.5, 3, decay=0.0)


def test_hierarchical_remask():
    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(6, 100, generator=gen) < 0.5).float()
    assert torch.equal(hierarchical_remask(mask, 0.5, 0.0, generator=gen), mask)
    new = hierarchical_remask(mask, 0.25, 1.0, generator=gen)
    assert new.dtype == mask.dtype and torch.all(new >= mask)  # superset
    visible = (1 - mask).sum(1)
    assert torch.equal(new.sum(1) - mask.sum(1), torch.floor(0.25 * visible + 0.5))
    added = (new - mask).bool()
    assert len({tuple(a.tolist()) for a in added}) == 6  # fresh positions per sample
    many = torch.rand(400, 50, generator=gen) < 0.5
    some = hierarchical_remask(many, 0.5, 0.5, generator=gen)
    assert some.dtype == torch.bool and 0.4 < (some != many).any(1).float().mean().item() < 0.6
