"""The pre-training trainers' common ground: MAE (`mae_trainer.py`) and GMIM (`gmim_trainer.py`) are siblings on
`PretrainingTrainer`, which owns everything but the masking, the network wrapper and the loss:

- data: nnU-Net's plans, preprocessing and loader; the labelled training cases plus the unlabeled ones
  (`nnunet_mae add_unlabeled`); labels loaded but never used (no foreground oversampling); light augmentation;
- the pre-flight check that the encoder will load into the fine-tuning trainer's network;
- mask seeding (a generator per epoch from base seed, rank, epoch) and fixed-seed validation masks;
- validation = the reconstruction loss on the validation crops, the best checkpoint by its moving average;
- reconstruction PNGs and the progress plot; nnU-Net's segmentation validation skipped.

A method subclasses it with `build_network_architecture`, `mask_and_reconstruct`, `compute_loss` and
`masking_metadata`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from time import time
from typing import List

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import join
from torch import nn
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.nnunet.seg_to_onehot import MoveSegAsOneHotToDataTransform
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform, Convert3DTo2DTransform
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

from nnunet_mae.architectures.tokens import token_grid, unpatchify
from nnunet_mae.data.case_view import case_view
from nnunet_mae.data.unlabeled import unlabeled_folder, unlabeled_identifiers
from nnunet_mae.training.distributed import mean_over_ranks, unwrap_network
from nnunet_mae.probing.history import ProbeHistory
from nnunet_mae.training.encoder_probe import ProbeDuringPretraining
from nnunet_mae.training.pretraining_plots import (exponential_moving_average, plot_pretraining_progress,
                                                   save_reconstruction_png)
from nnunet_mae.training.seeding import epoch_generator, fresh_seed
from nnunet_mae.training.vit_trainer import nnUNetTrainerViT
from nnunet_mae.transfer.encoder_transfer import transfer_encoder_weights


class PretrainingTrainer(ProbeDuringPretraining, nnUNetTrainerViT):
    """Abstract: not a trainer to run (nnU-Net would not find it by an nnUNetTrainer* name either)."""

    drop_path_rate = 0.0
    trainer_kind = "pretraining"
    mae_decoder_dim: int = 192
    mae_decoder_depth: int = 2
    mae_decoder_heads: int = 6
    finetune_trainer_name: str = "nnUNetTrainerMAEFinetune"

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.configuration_manager.previous_stage_name is not None:
            parent = self.plans_manager.plans["configurations"][configuration].get("inherits_from", "3d_fullres")
            command = shlex.join(["nnUNetv2_train", self.plans_manager.dataset_name, parent, "all", "-tr",
                                  self.__class__.__name__])
            raise ValueError(
                f"{self.__class__.__name__} does not pre-train the cascade stage {configuration!r} (its inputs include "
                f"the previous stage's segmentation, a label). Pre-train on {parent!r} instead (`{command}`); "
                f"the fine-tuning trainer on {configuration!r} loads that encoder.")
        self.mask_ratio = 0.75
        self.normalize_targets = False  # raw z-scored voxels as targets (nnssl); True = SelfMedMAE's norm_pix_loss
        self.oversample_foreground_percent = 0.0  # labels are not used
        self.validation_mask_seed = 1234
        self.reconstruction_png_every = 50
        self.num_reconstruction_examples = 4
        self._val_step = 0
        self._png_batch: torch.Tensor | None = None
        self.mask_generator: torch.Generator | None = None  # re-seeded every epoch (training/seeding.py)
        self._mask_base_seed = fresh_seed()  # drawn per process, used when `seed` is None
        self._warned_constant = False
        self.best_reconstruction_loss: float | None = None  # the lowest moving-average validation loss so far
        self.init_probe()  # the probe's settings (training/encoder_probe.py)

    @staticmethod
    def get_training_transforms(patch_size, rotation_for_DA, deep_supervision_scales, mirror_axes,
                                do_dummy_2d_data_aug, use_mask_for_norm=None, is_cascaded=False,
                                foreground_labels=None, regions=None, ignore_label=None) -> BasicTransform:
        """Light augmentation: rotation up to 15 degrees and scaling 0.9-1.1 (each p=0.2), mirroring."""
        mild_rotation = (-np.pi / 12, np.pi / 12)
        transforms: list[BasicTransform] = [Convert3DTo2DTransform()] if do_dummy_2d_data_aug else []
        transforms.append(SpatialTransform(
            patch_size[1:] if do_dummy_2d_data_aug else patch_size, patch_center_dist_from_border=0,
            random_crop=False, p_elastic_deform=0, p_rotation=0.2, rotation=mild_rotation, p_scaling=0.2,
            scaling=(0.9, 1.1), p_synchronize_scaling_across_axes=1, bg_style_seg_sampling=False,
            border_mode_seg="constant", padding_value_seg=-1))
        if do_dummy_2d_data_aug:
            transforms.append(Convert2DTo3DTransform())
        if mirror_axes:
            transforms.append(MirrorTransform(allowed_axes=mirror_axes))
        if use_mask_for_norm is not None and any(use_mask_for_norm):
            transforms.append(MaskImageTransform(
                apply_to_channels=[i for i, m in enumerate(use_mask_for_norm) if m], channel_idx_in_seg=0,
                set_outside_to=0))
        transforms.append(RemoveLabelTansform(-1, 0))
        if is_cascaded:  # the previous stage's segmentation is an input channel, as in nnU-Net
            transforms.append(MoveSegAsOneHotToDataTransform(source_channel_idx=1, all_labels=foreground_labels,
                                                             remove_channel_from_source=True))
        return ComposeTransforms(transforms)

    # ----- data: the labelled training cases plus the unlabeled ones (nnunet_mae add_unlabeled) -----------------
    def get_tr_and_val_datasets(self):
        """nnU-Net's training and validation cases; training also gets the unlabeled cases of this configuration.
        Validation (the reconstruction loss with fixed masks) stays on nnU-Net's fixed set of labelled cases."""
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        folder = unlabeled_folder(self.preprocessed_dataset_folder_base, self.configuration_manager.data_identifier)
        extra = unlabeled_identifiers(folder)
        self.print_to_log_file(
            f"Pre-training cases: {len(dataset_tr.identifiers)} labelled training case(s) + {len(extra)} unlabeled "
            f"case(s){f' from {folder}' if extra else ''}; validation: {len(dataset_val.identifiers)} labelled "
            f"case(s), the same every epoch.")
        if not extra:
            return dataset_tr, dataset_val
        sources = {i: Path(self.preprocessed_dataset_folder) for i in dataset_tr.identifiers}
        sources.update({i: folder for i in extra})
        view = case_view(Path(self.output_folder) / "pretraining_cases", sources)
        return self.dataset_class(str(view), identifiers=sorted(sources)), dataset_val

    # ----- the start: the encoder must fit the fine-tuning network -----------------------------------------------
    def on_train_start(self):
        if not self.was_initialized:
            self.initialize()
        self.encoder_in_finetuning_network()  # refuses, before the first step, an encoder fine-tuning cannot load
        super().on_train_start()
        if self.current_epoch == 0 and self.probe_every > 0 and self.probe_history.baseline is None:
            self.probe_now(-1)

    def finetune_trainer_class(self):
        if getattr(self, "_finetune_class", None) is None:
            self._finetune_class = recursive_find_trainer_class_by_name(self.finetune_trainer_name)
        return self._finetune_class

    def encoder_in_finetuning_network(self) -> nn.Module:
        """The segmentation network of `finetune_trainer_name` (built once) holding a copy of the current encoder,
        as fine-tuning will start; raises a TransferError naming what does not fit."""
        finetune_class = self.finetune_trainer_class()
        if self._probe_network is None:
            self._probe_network = finetune_class.build_network_architecture(
                self.plans_manager, self.configuration_manager, self.num_input_channels,
                self.label_manager.num_segmentation_heads, False).to(self.device)
        own = self.network_kwargs(self.configuration_manager, self.num_input_channels,
                                  self.label_manager.num_segmentation_heads)
        theirs = finetune_class.network_kwargs(self.configuration_manager, self.num_input_channels,
                                               self.label_manager.num_segmentation_heads)
        report = transfer_encoder_weights(unwrap_network(self.network).state_dict(), self._probe_network,
                                          source_grid=token_grid(own["input_shape"], own["token_size"]),
                                          target_grid=token_grid(theirs["input_shape"], theirs["token_size"]))
        report.raise_if_incomplete(f"the pre-training network of {self.__class__.__name__} "
                                   f"(checked against {self.finetune_trainer_name} before training)")
        return self._probe_network

    # ----- steps --------------------------------------------------------------------------------------------
    def on_train_epoch_start(self):
        base = self.seed if self.seed is not None else self._mask_base_seed
        self.mask_generator = epoch_generator(self.device, base, self.local_rank, self.current_epoch)
        super().on_train_epoch_start()

    def training_generator(self, generator: torch.Generator | None) -> torch.Generator | None:
        """The given generator (validation, pictures) or this epoch's training mask generator."""
        return generator if generator is not None else self.mask_generator

    # ----- what a method provides ---------------------------------------------------------------------------------
    def mask_and_reconstruct(self, data: torch.Tensor, generator: torch.Generator | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predictions (B, L, P), target tokens (B, L, P) and the mask (B, L), 1 = masked."""
        raise NotImplementedError

    def compute_loss(self, data: torch.Tensor, target=None, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def train_step(self, batch: dict) -> dict:
        self.warn_if_constant(batch)
        return super().train_step(batch)

    def warn_if_constant(self, batch: dict) -> None:
        """Constant images (all zeros, a failed conversion) teach nothing: the loss falls to 0. Say so, once."""
        if self._warned_constant:
            return
        data = batch["data"]
        flat = data.reshape(data.shape[0], -1)
        constant = (flat.amax(1) == flat.amin(1)).tolist()
        if any(constant):
            keys = batch.get("keys")
            names = [str(keys[i]) if keys is not None else f"batch item {i}" for i, c in enumerate(constant) if c]
            self.print_to_log_file(
                f"WARNING: constant pre-training image(s) {', '.join(names)} (every voxel the same value). There is "
                f"nothing to reconstruct in them and the loss on them is 0. Check those raw images, then run "
                f"nnUNetv2_plan_and_preprocess again.")
            self._warned_constant = True

    def on_validation_epoch_start(self):
        super().on_validation_epoch_start()
        self._val_step = 0

    def validation_generator(self, step: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.validation_mask_seed + step)

    def validation_step(self, batch: dict) -> dict:
        data = batch["data"].to(self.device, non_blocking=True)
        if self._val_step == 0:
            self._png_batch = data[: self.num_reconstruction_examples].detach().cpu()
        with self.autocast():
            loss = self.compute_loss(data, generator=self.validation_generator(self._val_step))
        self._val_step += 1
        return {"loss": loss.detach().cpu().numpy()}

    def on_validation_epoch_end(self, val_outputs: List[dict]):
        self.logger.log("val_losses", mean_over_ranks([o["loss"] for o in val_outputs]), self.current_epoch)

    def on_epoch_end(self):
        """nnU-Net's epoch end for a loss instead of a Dice: nnU-Net's own `on_epoch_end` prints and plots the pseudo
        Dice (`dice_per_class_or_region`, `ema_fg_dice`) and keeps the highest; pre-training has a reconstruction
        loss to keep the lowest of, so this one does the same steps in the same order (timestamp, log lines, best,
        latest, plot, epoch + 1) for that loss, and adds the reconstruction PNGs. Routing the loss through nnU-Net's
        keys (a negated loss as "pseudo Dice") would print and plot a negative Dice."""
        self.logger.log("epoch_end_timestamps", time(), self.current_epoch)
        val_losses = self.logger.get_value("val_losses", step=None)
        ema = exponential_moving_average(val_losses)[-1]
        log = self.logger
        epoch_time = log.get_value("epoch_end_timestamps", -1) - log.get_value("epoch_start_timestamps", -1)
        self.print_to_log_file("train_loss", np.round(self.logger.get_value("train_losses", -1), 4))
        self.print_to_log_file("val_loss (reconstruction, fixed masks)", np.round(val_losses[-1], 4),
                               "moving average", np.round(ema, 4))
        self.print_to_log_file(f"Epoch time: {np.round(epoch_time, 2)} s")
        probe = self.probe_now(self.current_epoch) if self.is_probe_epoch(self.current_epoch) else None
        if self.is_new_best(ema, probe):
            self.save_checkpoint(join(self.output_folder, "checkpoint_best.pth"))
        # after the best: checkpoint_latest then holds the best value that checkpoint_best holds (for --c)
        if (self.current_epoch + 1) % self.save_every == 0 and self.current_epoch != self.num_epochs - 1:
            self.save_checkpoint(join(self.output_folder, "checkpoint_latest.pth"))
        if self.local_rank == 0:
            plot_pretraining_progress(self.logger.get_checkpoint(), self.output_folder, self.probe_history)
            if self.current_epoch % self.reconstruction_png_every == 0 or self.current_epoch == self.num_epochs - 1:
                self.save_reconstructions()
        self.current_epoch += 1

    def checkpoint_extras(self) -> dict:
        return {**super().checkpoint_extras(), "probe": self.probe_history.to_dict(),
                "best_reconstruction_loss": self.best_reconstruction_loss}

    def restore_checkpoint_extras(self, checkpoint: dict) -> None:
        super().restore_checkpoint_extras(checkpoint)
        self.probe_history = ProbeHistory.from_dict(checkpoint.get("probe"))
        self.best_reconstruction_loss = checkpoint.get("best_reconstruction_loss")

    def is_new_best(self, ema: float, probe) -> bool:
        """checkpoint_best: the lowest moving-average reconstruction loss, or with best_checkpoint_by = "probe" the
        highest mean probe Dice (on the fold-0 validation cases). nnU-Net's `_best_ema` (the best pseudo Dice) stays
        unused: pre-training has no Dice; `best_reconstruction_loss` and the probe history are kept in the checkpoint
        instead."""
        if self.best_reconstruction_loss is None or ema < self.best_reconstruction_loss:
            self.best_reconstruction_loss = ema
            self.print_to_log_file(f"New best moving-average reconstruction loss: {np.round(ema, 4)}")
            if self.best_checkpoint_by == "reconstruction":
                return True
        if self.best_checkpoint_by == "probe" and probe is not None and self.probe_history.best() is probe:
            self.print_to_log_file(f"New best probe Dice: {probe.mean:.3f} (checkpoint_best.pth)")
            return True
        return False

    @torch.no_grad()
    def save_reconstructions(self) -> str | None:
        """PNG of the first validation examples: input, masked input, reconstruction (fixed mask seed)."""
        if self._png_batch is None:
            return None
        network = unwrap_network(self.network)
        was_training = network.training
        network.eval()
        data = self._png_batch.to(self.device)
        with self.autocast():
            pred, target_tokens, mask = self.mask_and_reconstruct(data, self.validation_generator(0))
        pred = pred.float()
        if self.normalize_targets:  # undo the per-token normalisation for display
            pred = pred * (target_tokens.var(-1, keepdim=True) + 1e-6).sqrt() + target_tokens.mean(-1, keepdim=True)
        token, channels = self.token_size_for(self.configuration_manager), data.shape[1]
        grid = token_grid(data.shape[2:], token)
        m = mask.unsqueeze(-1)
        masked = unpatchify(target_tokens * (1 - m) + target_tokens.min() * m, token, grid, channels)
        recon = unpatchify(target_tokens * (1 - m) + pred * m, token, grid, channels)
        network.train(was_training)
        path = join(self.output_folder, "reconstructions", f"epoch_{self.current_epoch:04d}.png")
        return save_reconstruction_png(data.cpu(), masked.cpu(), recon.cpu(), path,
                                       title=f"{self.__class__.__name__}, epoch {self.current_epoch}, "
                                             f"mask ratio {self.mask_ratio}")

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("Segmentation validation skipped: pre-training has no segmentation output. The "
                               "reconstruction loss on the validation cases is in progress.png; reconstructions are "
                               f"in {join(self.output_folder, 'reconstructions')}.")

