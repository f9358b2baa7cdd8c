"""GMIM (Qi et al., Comput. Biol. Med. 2024) on the plain ViT: grid masking with hierarchical re-masking,
reconstruction of every token, and a siamese cross-correlation branch.

Published form (Swin UNETR encoder, released code `Pretrain/models/{ssl_head,swin_uneter,mask_layer}.py`):
all tokens go through the encoder; masked feature-map positions are blanked after the patch embedding and,
with a probability per stage, a further part is blanked before deeper Swin stages ("hierarchical masking");
a decoder reconstructs the voxels; a second encoder with the same weights (copied, no gradient) sees an
unmasked, intensity-augmented view, and a cross-correlation (Barlow Twins) loss ties both branches.

Translation onto this package's ViT (one token grid, no stages):
- Masked tokens are replaced by one learnable encoder-side `mask_token`, with the position embedding
  added, as SimMIM: masked token i enters the blocks as `mask_token + pos_i`, a visible one as
  `patch_embed(x)_i + pos_i`. GMIM blanks features with zeros; a learnable token is the ViT habit.
- Stage boundaries become block-group boundaries: `remask_block_indices(depth)` gives the blocks after
  1/4, 1/2 and 3/4 of the depth (blocks 3, 6, 9 of 12, 1-based). At a boundary, the hidden states of the
  tokens that are newly masked there are replaced by `mask_token + pos_i` again. The position embedding
  is re-added because a ViT knows positions only from its input, whereas Swin's relative position bias
  keeps the positions of blanked tokens known at every stage. Tokens masked earlier keep their states.
- Reconstruction reuses `MAEDecoder` with every token present (`ids_restore` = identity, so the decoder
  inserts no mask tokens); its own `mask_token` is therefore unused and frozen. The loss (in the trainer)
  is on the union of all masked tokens.
- Siamese branch: the same encoder modules, run under `torch.no_grad()` (stop-gradient) on the second
  view without masking; the released code copies the weights into a second encoder each step, which is
  the same thing. Final tokens of both branches are mean-pooled and projected by one `ProjectionHead` per
  branch (`projector_online`, `projector_target`), as the released code has one head per branch
  (`contrastive_head_x`, `contrastive_head_y`) and trains both: the target head sits outside the
  no-grad block. With the target head trained, every trainable parameter is used in a forward pass with
  a second view (needed by DDP without `find_unused_parameters`).

The checkpoint keeps the `encoder.*`/`decoder.*` keys of the segmentation network (see `mae.py`); the
segmentation decoder stays frozen and unused. `mask_token`, `mae_decoder.*` and `projector_*` are extra
keys that weight transfer and nnU-Net's `-pretrained_weights` loader skip.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nnunet_mae.architectures.mae import MAEPretrainingNetwork
from nnunet_mae.architectures.pos_embed import resample_pos_embed
from nnunet_mae.architectures.projection import ProjectionHead


def remask_block_indices(depth: int, levels: int = 3) -> list[int]:
    """0-based blocks after which GMIM re-masks: after depth*k/(levels+1) blocks, k = 1..levels.

    depth 12, levels 3 -> [2, 5, 8] (after blocks 3, 6, 9, 1-based), as Swin UNETR's stage boundaries.
    """
    if levels < 0 or depth < levels + 1:
        raise ValueError(f"depth={depth} cannot hold levels={levels} re-masking boundaries between blocks; "
                         f"use a depth >= levels + 1 (GMIM: 3 levels, ViT depth 12).")
    return [depth * k // (levels + 1) - 1 for k in range(1, levels + 1)]


class GMIMPretrainingNetwork(MAEPretrainingNetwork):
    """MAE network plus an encoder-side mask token and two projector heads, run the GMIM way.

    Extra args (besides those of `MAEPretrainingNetwork`):
        projector_hidden_dim, projector_dim: `ProjectionHead` sizes (pooled D -> hidden -> out).
        siamese: build the projector heads; without them `forward` takes no second view.
    """

    def __init__(self, *, projector_hidden_dim: int = 1024, projector_dim: int = 512, siamese: bool = True,
                 **mae_kwargs) -> None:
        super().__init__(**mae_kwargs)
        dim = self.encoder.embed_dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.mae_decoder.mask_token.requires_grad_(False)  # every token reaches the decoder: never inserted
        self.siamese = siamese
        if siamese:
            self.projector_online = ProjectionHead(in_dim=dim, hidden_dim=projector_hidden_dim, out_dim=projector_dim)
            self.projector_target = ProjectionHead(in_dim=dim, hidden_dim=projector_hidden_dim, out_dim=projector_dim)

    def position_embedding(self, grid: Sequence[int]) -> torch.Tensor:
        """(1, L, D) position embedding of the encoder for this token grid (resampled as `ViTEncoder.embed`)."""
        encoder = self.encoder
        return encoder.pos_embed if tuple(grid) == encoder.grid else resample_pos_embed(encoder.pos_embed,
                                                                                       encoder.grid, grid)

    def _check_remasks(self, remasks: Sequence[tuple[int, torch.Tensor]], shape: torch.Size
                       ) -> list[tuple[int, torch.Tensor]]:
        depth = len(self.encoder.blocks)
        remasks = sorted(((int(b), m) for b, m in remasks), key=lambda item: item[0])
        blocks = [b for b, _ in remasks]
        for block, mask in remasks:
            if not 0 <= block < depth - 1:
                raise ValueError(f"Re-masking after block {block}: the block index must be in 0..{depth - 2} "
                                 f"(re-masking after the last block would change nothing); see remask_block_indices.")
            if mask.shape != shape:
                raise ValueError(f"Re-mask after block {block} has shape {tuple(mask.shape)}, but the mask is "
                                 f"{tuple(shape)}; give one (B, L) mask per boundary.")
        if len(set(blocks)) != len(blocks):
            raise ValueError(f"Re-masking blocks {blocks} repeat an index; give one mask per boundary.")
        return remasks

    def forward(self, images: torch.Tensor, mask: torch.Tensor,
                remasks: Sequence[tuple[int, torch.Tensor]] = (),
                second_view: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        """GMIM forward.

        Args:
            images: (B, C, *spatial) the online view.
            mask: (B, L) 1/True = masked before the first block.
            remasks: (block_index, mask) pairs: after 0-based block `block_index`, tokens masked in `mask`
                but not yet masked get `mask_token + pos` as hidden state. Masks are cumulative (each a
                superset of the earlier ones, as `hierarchical_remask` returns); the order is by block.
            second_view: (B, C, *spatial) view for the stop-gradient target branch, or None (no siamese term).

        Returns dict:
            pred (B, L, P) voxel predictions of every token; mask (B, L) float union of all masks;
            z_online, z_target (B, projector_dim) projections or None without a second view;
            h_target (B, D) pooled target-branch tokens (no gradient) or None.
        """
        grid = self.encoder.grid_of(images.shape[2:])
        latent, current = self.encode_masked(images, mask, self._check_remasks(remasks, mask.shape), grid)
        ids_identity = torch.arange(latent.shape[1], device=latent.device).expand(latent.shape[0], -1)
        pred = self.mae_decoder(latent, ids_identity, grid)  # (B, L, P), no mask tokens inserted
        z_online = z_target = h_target = None
        if second_view is not None:
            z_online, z_target, h_target = self.siamese_branch(latent, images, second_view)
        return {"pred": pred, "mask": current.float(), "z_online": z_online, "z_target": z_target,
                "h_target": h_target}

    def encode_masked(self, images: torch.Tensor, mask: torch.Tensor, remasks: list, grid
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """All tokens through the encoder, masked ones as `mask_token + pos`, re-masked after the given blocks;
        returns the normed latent (B, L, D) and the union of the masks (B, L) bool."""
        encoder = self.encoder
        tokens = encoder.patch_embed(images).flatten(2).transpose(1, 2)  # (B, L, D)
        pos = self.position_embedding(grid).to(tokens.dtype)  # (1, L, D)
        masked_value = self.mask_token.to(tokens.dtype) + pos  # (1, L, D)
        current = mask.bool()  # (B, L)
        x = torch.where(current.unsqueeze(-1), masked_value, tokens + pos)  # (B, L, D)
        boundaries = dict(remasks)
        for index, block in enumerate(encoder.blocks):
            x = block(x)
            if index in boundaries:
                new = boundaries[index].bool() & ~current  # (B, L) newly masked here
                x = torch.where(new.unsqueeze(-1), masked_value.to(x.dtype), x)
                current = current | new
        return encoder.norm(x), current

    def siamese_branch(self, latent: torch.Tensor, images: torch.Tensor, second_view: torch.Tensor):
        """(z_online, z_target, h_target): projections of the online latent and of the stop-gradient target branch
        (same encoder weights, unmasked second view)."""
        if not self.siamese:
            raise ValueError("second_view was given, but the network was built with siamese=False (no "
                             "projector heads); build it with siamese=True or pass second_view=None.")
        if second_view.shape != images.shape:
            raise ValueError(f"second_view {tuple(second_view.shape)} must have the shape of images "
                             f"{tuple(images.shape)}.")
        with torch.no_grad():  # stop-gradient target branch: same encoder weights, no masking
            h_target = self.encoder(second_view)[0].mean(dim=1)  # (B, D)
        z_online = self.projector_online(latent)  # (B, L, D) mean-pooled -> (B, out)
        z_target = self.projector_target(h_target)  # trained head on detached features, as released code
        return z_online, z_target, h_target
