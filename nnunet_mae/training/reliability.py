"""`Reliability`: what makes a run safe to start, interrupt, resume and hand on, for any nnU-Net trainer.

A mixin in front of nnU-Net's `nnUNetTrainer` (or a subclass):
`class nnUNetTrainerReliable(Reliability, nnUNetTrainer): pass` trains as nnU-Net's trainer does, plus:
- one run per output folder (a lock naming the holder; a refused run leaves no log file there), SIGTERM ending the
  run like Ctrl-C, temporary files of killed writes removed (`guard_output_folder`, at `initialize()`);
- refusals (folder locked, unsafe checkpoint, encoder that does not fit) printed as one message, no traceback;
- nnU-Net's 5-fold split written atomically, with clear errors for too few cases or an unreadable file (`do_split`);
- checkpoints written once and atomically (a temporary file renamed), with this package's entries
  (`checkpoint_extras()`) in the same write, and `checkpoint_latest` holding the best value *after* this epoch
  (nnU-Net writes latest before it compares the epoch with the best, so `--c` would compare later epochs with a stale
  best and could overwrite checkpoint_best with a worse model);
- checkpoints read once, weights-only (`--c`, `--val`): nnU-Net's `load_checkpoint` is handed the dict already read,
  so a file swapped in between cannot run code; `restore_checkpoint_extras(checkpoint)` gets the same dict;
- `nnUNetv2_train -pretrained_weights FILE` read weights-only too, and remembered (`explicit_pretrained_weights`).
"""

from __future__ import annotations

import os
import shlex
import shutil

import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer_module
import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

from nnunet_mae.training.clean_exit import install_refusal_hook, install_sigterm_handler
from nnunet_mae.training.nnunet_hooks import (guard_pretrained_weights, release_pretrained_weights_guard, serve,
                                              torch_seen_by)
from nnunet_mae.training.run_lock import RunLockedError, acquire_run_lock
from nnunet_mae.training.splits import NNUNET_FOLDS, check_split_file, write_default_split
from nnunet_mae.transfer.checkpoint_io import atomic_target, remove_stray_temporaries, safe_torch_load


class Reliability:
    explicit_pretrained_weights: str | None = None  # set when nnUNetv2_train got -pretrained_weights

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        install_refusal_hook()  # before nnU-Net reads a checkpoint (--c) or initialises
        super().__init__(plans, configuration, fold, dataset_json, device)

    # ----- the start of a run -----------------------------------------------------------------------------------
    def initialize(self):
        if not self.was_initialized:
            self.guard_output_folder()
        super().initialize()
        self._pretrained_guard = guard_pretrained_weights(self, self.on_stock_pretrained_weights)

    def on_train_start(self):
        release_pretrained_weights_guard(getattr(self, "_pretrained_guard", None))
        super().on_train_start()

    def guard_output_folder(self) -> None:
        """One run per output folder; SIGTERM exits cleanly; temporary files of killed writes removed."""
        if self.local_rank != 0:
            return
        install_sigterm_handler()
        try:
            _, note = acquire_run_lock(self.output_folder)
        except RunLockedError:
            if os.path.isfile(self.log_file):  # this refused run's own log (nnU-Net opens it in __init__)
                os.remove(self.log_file)
            raise
        if note:
            self.print_to_log_file(note)
        for path in remove_stray_temporaries(self.output_folder):
            self.print_to_log_file(f"Removed {path.name}, left by a write that was interrupted.")

    def on_stock_pretrained_weights(self, path: str) -> None:
        """Called after nnU-Net's `-pretrained_weights` loader has loaded `path` into this trainer's network."""
        self.explicit_pretrained_weights = path
        self.print_to_log_file(f"Weights loaded from -pretrained_weights {path} by nnU-Net's strict loader "
                               f"(every key but .seg_layers.; read once, with weights_only=True).")

    def do_split(self):
        """nnU-Net's split, written atomically, with clear errors where it cannot exist or cannot be read."""
        splits_file = os.path.join(self.preprocessed_dataset_folder_base, "splits_final.json")
        if self.fold != "all":
            if os.path.isfile(splits_file):
                check_split_file(splits_file)
            else:
                if self.dataset_class is None:
                    self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
                cases = self.dataset_class.get_identifiers(self.preprocessed_dataset_folder)
                if len(cases) < NNUNET_FOLDS:
                    command = shlex.join(["nnUNetv2_train", self.plans_manager.dataset_name, self.configuration_name,
                                          "all", "-tr", self.__class__.__name__])
                    raise ValueError(
                        f"{self.plans_manager.dataset_name} has {len(cases)} training case(s); nnU-Net's default "
                        f"{NNUNET_FOLDS}-fold split needs at least {NNUNET_FOLDS}. Train on fold "
                        f"'all' (`{command}`), or write your own split to {splits_file}.")
                self.print_to_log_file(f"Creating new {NNUNET_FOLDS}-fold cross-validation split (written "
                                       f"atomically)...")
                write_default_split(splits_file, cases)
        return super().do_split()

    # ----- checkpoints --------------------------------------------------------------------------------------------
    def checkpoint_extras(self) -> dict:
        """Entries added to nnU-Net's checkpoint dict (in the same write). Subclasses extend it."""
        return {}

    def restore_checkpoint_extras(self, checkpoint: dict) -> None:
        """Called after nnU-Net's load_checkpoint with the checkpoint's dict (--c, --val)."""

    def best_value_after_this_epoch(self):
        """The best-so-far value once this epoch is compared (nnU-Net: the highest EMA pseudo Dice)."""
        ema = self.logger.get_value("ema_fg_dice", step=None)
        if len(ema) < self.current_epoch + 1:
            return self._best_ema
        value = ema[self.current_epoch]
        return value if self._best_ema is None or value > self._best_ema else self._best_ema

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint plus `checkpoint_extras()`, written once to a temporary file and renamed."""
        latest = os.path.basename(filename) == "checkpoint_latest.pth"

        def write(checkpoint: dict, target) -> None:
            checkpoint.update(self.checkpoint_extras())
            if latest:
                checkpoint["_best_ema"] = self.best_value_after_this_epoch()
            with atomic_target(target) as tmp:
                torch.save(checkpoint, tmp)

        try:
            with torch_seen_by(nnunet_trainer_module, save=write):
                super().save_checkpoint(filename)
        except (OSError, RuntimeError) as e:
            folder = os.path.dirname(os.path.abspath(filename))
            free = shutil.disk_usage(folder).free / 2**30 if os.path.isdir(folder) else float("nan")
            raise OSError(f"Could not write the checkpoint {filename} ({type(e).__name__}: {e}). {free:.2f} GiB are "
                          f"free on the disk of {folder}: if it is full, free space, then resume with `--c`. The "
                          f"previous version of {os.path.basename(filename)} is intact.") from e

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """nnU-Net's load (--c, --val) of a file read once, weights-only; says when --c falls back to
        checkpoint_best.pth."""
        is_file = isinstance(filename_or_checkpoint, (str, os.PathLike))
        checkpoint = safe_torch_load(filename_or_checkpoint) if is_file else filename_or_checkpoint
        # nnU-Net 2.8.1's load_checkpoint reads a path itself (a dict raises UnboundLocalError there): it gets the
        # path, and its torch.load returns the dict read above
        with torch_seen_by(nnunet_trainer_module, load=serve(checkpoint)):
            super().load_checkpoint(os.fspath(filename_or_checkpoint) if is_file else "<checkpoint dict>")
        self.restore_checkpoint_extras(checkpoint)
        if (is_file and os.path.basename(os.fspath(filename_or_checkpoint)) == "checkpoint_best.pth"
                and self.current_epoch < self.num_epochs):
            self.print_to_log_file(
                f"Loaded checkpoint_best.pth (end of epoch {self.current_epoch - 1}). With --c this means that "
                f"neither checkpoint_latest.pth nor checkpoint_final.pth exists: training continues from the best "
                f"epoch, and the epochs after it are trained again.")
