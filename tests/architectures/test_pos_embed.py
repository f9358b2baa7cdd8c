import pytest
import torch

from nnunet_mae.architectures.pos_embed import resample_pos_embed, sincos_pos_embed


def test_sincos_shape_and_distinct_positions():
    emb = sincos_pos_embed((3, 4, 5), 96)
    assert emb.shape == (1, 60, 96)
    assert torch.cdist(emb[0], emb[0]).fill_diagonal_(1.0).min() > 1e-3  # every position is unique


def test_sincos_handles_dims_not_divisible_by_axes():
    assert sincos_pos_embed((4, 4, 4), 100).shape == (1, 64, 100)


def test_resample_same_grid_is_identity_and_new_grid_shape():
    emb = torch.randn(1, 60, 32)
    assert resample_pos_embed(emb, (3, 4, 5), (3, 4, 5)) is emb
    out = resample_pos_embed(emb, (3, 4, 5), (6, 4, 2))
    assert out.shape == (1, 48, 32)


def test_resample_keeps_a_smooth_embedding():
    # an embedding linear along axis 0 stays linear (inside the grid) after upsampling by 2
    grid = (4, 2, 2)
    coord = torch.arange(4.0).repeat_interleave(4)
    emb = coord.view(1, -1, 1).repeat(1, 1, 8)
    out = resample_pos_embed(emb, grid, (8, 2, 2)).view(8, 2, 2, 8)[:, 0, 0, 0]
    assert torch.all(out[1:] >= out[:-1])
    assert out[0] == pytest.approx(0.0) and out[-1] == pytest.approx(3.0)


def test_resample_rejects_other_dimensionality():
    with pytest.raises(ValueError, match="same dimensionality"):
        resample_pos_embed(torch.randn(1, 12, 8), (3, 4), (3, 2, 2))
