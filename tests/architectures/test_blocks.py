import torch

from nnunet_mae.architectures.blocks import Attention, DropPath


def plain_attention(module: Attention, x: torch.Tensor) -> torch.Tensor:
    q, k, v = module.split_heads(x)
    weights = torch.softmax(q @ k.transpose(-2, -1) / module.head_dim ** 0.5, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(x.shape)
    return module.proj(out)


def test_sdpa_attention_agrees_with_plain_attention():
    torch.manual_seed(0)
    attn = Attention(dim=48, num_heads=4).eval()
    x = torch.randn(3, 17, 48)
    torch.testing.assert_close(attn(x), plain_attention(attn, x), atol=1e-5, rtol=1e-4)


def test_drop_path_is_identity_in_eval_and_drops_whole_samples_in_training():
    x = torch.ones(64, 5, 8)
    layer = DropPath(0.5)
    assert torch.equal(layer.eval()(x), x)
    out = layer.train()(x)
    per_sample = out.reshape(64, -1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)  # all or nothing per sample
    assert 0 < (per_sample[:, 0] == 0).sum() < 64
