"""GMIMPretrainingNetwork: every token through the encoder, mask token at the masked and re-masked positions,
stop-gradient target branch, gradients where (and only where) they belong."""

import math

import pytest
import torch

from nnunet_mae.architectures.gmim import GMIMPretrainingNetwork, remask_block_indices
from nnunet_mae.architectures.tokens import patchify, unpatchify
from nnunet_mae.losses.cross_correlation import cross_correlation_loss
from nnunet_mae.losses.reconstruction import masked_reconstruction_loss

SHAPE_3D = (16, 24, 16)  # token grid (2, 3, 2) with 8^3 tokens: L = 12, non-cubic
TOKEN = (8, 8, 8)


def small_net(input_shape=SHAPE_3D, token_size=8, siamese=True, channels=1) -> GMIMPretrainingNetwork:
    torch.manual_seed(0)
    return GMIMPretrainingNetwork(input_channels=channels, num_classes=3, input_shape=input_shape,
                                  token_size=token_size, embed_dim=32, depth=4, num_heads=2, mae_decoder_dim=16,
                                  mae_decoder_depth=1, mae_decoder_heads=2, projector_hidden_dim=24,
                                  projector_dim=16, siamese=siamese)


def masks(batch, num_tokens, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, num_tokens, generator=g) < 0.5).float()
    remask = torch.maximum(mask, (torch.rand(batch, num_tokens, generator=g) < 0.5).float())
    return mask, remask


def capture_block_inputs(net, indices):
    seen = {}
    handles = [net.encoder.blocks[i].register_forward_pre_hook(
        lambda module, args, i=i: seen.__setitem__(i, args[0].detach().clone())) for i in indices]
    return seen, handles


def full_loss(out, images, token_size=TOKEN):
    reconstruction = masked_reconstruction_loss(out["pred"], patchify(images, token_size), out["mask"])
    return reconstruction + 0.005 * cross_correlation_loss(out["z_online"], out["z_target"])


def test_remask_block_indices_are_the_quarter_boundaries():
    assert remask_block_indices(12) == [2, 5, 8]
    assert remask_block_indices(4) == [0, 1, 2]
    with pytest.raises(ValueError, match="depth=3"):
        remask_block_indices(3)


@pytest.mark.parametrize("shape, token, channels", [(SHAPE_3D, 8, 1), ((24, 16), (8, 4), 2)])
def test_output_shapes_3d_and_2d(shape, token, channels):
    net = small_net(shape, token, channels=channels)
    grid = net.encoder.grid
    num_tokens, voxels = math.prod(grid), math.prod(net.encoder.token_size) * channels
    images = torch.randn(3, channels, *shape)
    mask, remask = masks(3, num_tokens)
    out = net(images, mask, [(1, remask)], second_view=images + 0.1)
    assert out["pred"].shape == (3, num_tokens, voxels)
    assert out["mask"].shape == (3, num_tokens) and out["mask"].dtype == torch.float32
    assert torch.equal(out["mask"], remask)  # union of the cumulative masks
    assert out["z_online"].shape == out["z_target"].shape == (3, 16)
    assert out["h_target"].shape == (3, 32)
    plain = net(images, mask)
    assert plain["z_online"] is None and plain["z_target"] is None and torch.equal(plain["mask"], mask)


def test_all_tokens_enter_the_encoder_masked_ones_as_mask_token_plus_position():
    net = small_net()
    images = torch.randn(2, 1, *SHAPE_3D)
    mask, _ = masks(2, 12)
    seen, handles = capture_block_inputs(net, [0])
    net(images, mask)
    [h.remove() for h in handles]
    x = seen[0]  # (B, L, D): all 12 tokens
    assert x.shape == (2, 12, 32)
    pos = net.encoder.pos_embed.detach()
    expected = torch.where(mask.bool().unsqueeze(-1), net.mask_token.detach() + pos, net.encoder.embed(images).detach())
    torch.testing.assert_close(x, expected)


def test_remasked_positions_hold_the_mask_token_after_the_boundary():
    net = small_net()
    images = torch.randn(2, 1, *SHAPE_3D)
    mask, remask = masks(2, 12)
    new = remask.bool() & ~mask.bool()
    assert new.any() and (mask.bool()).any()
    outputs = {}
    hooks = [net.encoder.blocks[i].register_forward_hook(
        lambda m, a, out, i=i: outputs.__setitem__(i, out.detach().clone())) for i in (1, 2)]
    seen, handles = capture_block_inputs(net, [2, 3])
    net(images, mask, [(1, remask)])
    [h.remove() for h in hooks + handles]
    after_block_1, into_block_2 = outputs[1], seen[2]
    masked_value = (net.mask_token + net.encoder.pos_embed).detach().expand(2, -1, -1)
    torch.testing.assert_close(into_block_2[new], masked_value[new])  # newly masked: replaced
    torch.testing.assert_close(into_block_2[~new], after_block_1[~new])  # visible and earlier masked: kept
    assert not torch.allclose(into_block_2[mask.bool()], masked_value[mask.bool()])  # earlier masked evolved
    torch.testing.assert_close(seen[3], outputs[2])  # no re-mask given after block 2: untouched


def test_masked_voxels_do_not_leak_into_the_online_branch():
    net = small_net().eval()
    images = torch.randn(2, 1, *SHAPE_3D)
    mask, _ = masks(2, 12)
    tokens = patchify(images, TOKEN)
    perturbed = tokens + 5.0 * mask.unsqueeze(-1) * torch.randn_like(tokens)
    other = unpatchify(perturbed, TOKEN, net.encoder.grid, 1)
    with torch.no_grad():
        torch.testing.assert_close(net(images, mask)["pred"], net(other, mask)["pred"])


def test_no_gradient_reaches_the_target_branch():
    net = small_net()
    images = torch.randn(4, 1, *SHAPE_3D)
    second_view = (images + 0.1 * torch.randn_like(images)).requires_grad_(True)
    mask, remask = masks(4, 12)
    out = net(images, mask, [(2, remask)], second_view=second_view)
    assert out["h_target"].requires_grad is False
    loss = full_loss(out, images)
    (grad_second_view,) = torch.autograd.grad(loss, second_view, allow_unused=True, retain_graph=True)
    assert grad_second_view is None
    loss.backward()
    assert second_view.grad is None


def test_every_trainable_parameter_gets_a_gradient_and_frozen_ones_none():
    net = small_net()
    images = torch.randn(4, 1, *SHAPE_3D)
    mask, remask = masks(4, 12)
    full_loss(net(images, mask, [(0, mask), (2, remask)], second_view=images.flip(-1)), images).backward()
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert {"mask_token", "projector_target.net.0.weight", "encoder.pos_embed"} <= trainable
    missing = sorted(n for n in trainable if net.get_parameter(n).grad is None)
    assert not missing, f"no gradient for {missing}"
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert "mae_decoder.mask_token" in frozen and any(n.startswith("decoder.") for n in frozen)
    assert all(n.startswith("decoder.") or n == "mae_decoder.mask_token" for n in frozen)
    assert all(net.get_parameter(n).grad is None for n in frozen)
    # the encoder gets gradient from the masked-token reconstruction and the online projection
    assert net.mask_token.grad.abs().sum() > 0 and net.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_reconstruction_only_network_uses_every_trainable_parameter():
    net = small_net(siamese=False)
    images = torch.randn(2, 1, *SHAPE_3D)
    mask, remask = masks(2, 12)
    out = net(images, mask, [(1, remask)])
    masked_reconstruction_loss(out["pred"], patchify(images, TOKEN), out["mask"]).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert not any(n.startswith("projector") for n, _ in net.named_parameters())
    with pytest.raises(ValueError, match="siamese=False"):
        net(images, mask, second_view=images)


def test_bad_remask_arguments_are_refused():
    net = small_net()
    images = torch.randn(2, 1, *SHAPE_3D)
    mask, remask = masks(2, 12)
    with pytest.raises(ValueError, match="block index must be in 0..2"):
        net(images, mask, [(3, remask)])
    with pytest.raises(ValueError, match="has shape"):
        net(images, mask, [(1, remask[:, :5])])
    with pytest.raises(ValueError, match="repeat an index"):
        net(images, mask, [(1, remask), (1, remask)])


def test_bf16_autocast_forward_and_backward():
    net = small_net()
    images = torch.randn(2, 1, *SHAPE_3D)
    mask, remask = masks(2, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(images, mask, [(1, remask)], second_view=images * 0.9)
        loss = full_loss(out, images)
    assert torch.isfinite(loss)
    loss.backward()
    assert net.mask_token.grad is not None
