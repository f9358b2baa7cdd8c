import pytest
import torch

from nnunet_mae.architectures.tokens import patchify, round_patch_to_tokens, token_grid, unpatchify


@pytest.mark.parametrize("shape,token", [((24, 16, 40), (8, 8, 8)), ((32, 16, 16), (16, 8, 4)), ((24, 40), (8, 4))])
def test_patchify_round_trip_non_cubic_multichannel(shape, token):
    images = torch.randn(2, 3, *shape)
    grid = token_grid(shape, token)
    tokens = patchify(images, token)
    assert tokens.shape == (2, torch.tensor(grid).prod().item(), torch.tensor(token).prod().item() * 3)
    assert torch.equal(unpatchify(tokens, token, grid, 3), images)


def test_patchify_token_content_is_the_voxel_block_channel_last():
    images = torch.randn(1, 2, 16, 24, 8)
    tokens = patchify(images, (8, 8, 8))
    # token index 1 is grid position (0, 1, 0): voxels [0:8, 8:16, 0:8]
    block = images[0, :, 0:8, 8:16, 0:8].permute(1, 2, 3, 0).reshape(-1)
    assert torch.equal(tokens[0, 1], block)


def test_round_patch_to_tokens_and_errors():
    assert round_patch_to_tokens((40, 56, 40), (8, 8, 8)) == (40, 56, 40)
    assert round_patch_to_tokens((40, 52, 37), (16, 8, 8)) == (48, 56, 40)
    assert round_patch_to_tokens((3,), (8,)) == (8,)
    with pytest.raises(ValueError, match="not a positive multiple of the token size"):
        token_grid((40, 50), (8, 8))
