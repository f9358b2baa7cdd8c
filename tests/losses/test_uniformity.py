import pytest
import torch

from nnunet_mae.losses.uniformity import token_uniformity_loss


def test_tokens_spread_in_all_directions_score_near_one_over_d():
    tokens = torch.randn(4, 64, 128, generator=torch.Generator().manual_seed(0))
    assert token_uniformity_loss(tokens).item() == pytest.approx(1 / 128, rel=0.2)


def test_tokens_differing_along_one_direction_score_one():
    g = torch.Generator().manual_seed(0)
    common, direction = torch.randn(32), torch.randn(32)
    tokens = common + torch.randn(2, 50, 1, generator=g) * direction  # (2, 50, 32): a rank-1 spread
    assert token_uniformity_loss(tokens).item() == pytest.approx(1.0, abs=1e-4)


def test_gradient_spreads_collapsed_tokens_and_too_few_tokens_are_refused():
    g = torch.Generator().manual_seed(0)
    tokens = (torch.randn(1, 40, 1, generator=g) * torch.randn(16, generator=g)
              + 0.01 * torch.randn(1, 40, 16, generator=g)).requires_grad_()
    before = token_uniformity_loss(tokens)
    before.backward()
    after = token_uniformity_loss(tokens - 5.0 * tokens.grad)
    assert after < before
    with pytest.raises(ValueError, match="at least 2 tokens"):
        token_uniformity_loss(torch.randn(1, 1, 8))
