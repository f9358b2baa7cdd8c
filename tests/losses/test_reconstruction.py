import torch

from nnunet_mae.losses import masked_reconstruction_loss, reconstruction_targets


def test_loss_ignores_visible_tokens():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 10, 16), torch.randn(2, 10, 16)
    mask = torch.zeros(2, 10)
    mask[:, ::2] = 1
    loss = masked_reconstruction_loss(pred, target, mask)
    pred2, target2 = pred.clone(), target.clone()
    pred2[:, 1::2] += 100.0
    target2[:, 1::2] -= 50.0
    assert torch.equal(masked_reconstruction_loss(pred2, target2, mask), loss)
    manual = ((pred - target) ** 2).mean(-1)[:, ::2].mean()
    torch.testing.assert_close(loss, manual)


def test_normalised_targets_are_standardised_per_token():
    t = reconstruction_targets(torch.randn(3, 5, 64) * 4 + 2, normalize=True)
    torch.testing.assert_close(t.mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(t.var(-1), torch.ones(3, 5), atol=1e-3, rtol=0)
