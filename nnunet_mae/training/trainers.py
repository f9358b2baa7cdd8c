"""Every trainer class of the package, in one namespace (what nnU-Net's lookup sees), made from one table.

Hand-written: the base trainers (`nnUNetTrainerViT`, MAE and GMIM pre-training and fine-tuning) and the ViT's
design variants (`_patchdec`, `_T`, `_B`, `_token16`, `_normpix`). Made here:
1. every pre-training method on every backbone that supports it, one class per backbone variant
   (`nnunet_mae/backbones`: `..._PrimusV3S` ... `_PrimusV3L`, `..._CNN`), pre-training and fine-tuning paired by
   name (`finetune_trainer_name`, `pretrain_trainer_name`);
2. for each class so far, every schedule and every precision, alone and combined, named
   `<trainer>[_<schedule>][_<precision>]` (e.g. `nnUNetTrainerMAEPretrain_PrimusV3B_50epochs_fp32`). A `_smoke`
   pre-training is checked against the `_smoke` fine-tuning and a `_smoke` fine-tuning starts from the `_smoke`
   pre-training; the other schedules and precisions pair with the trainer without suffix.
Each class is a real module-level class of this module (`__module__`, `__qualname__`), so it pickles (DDP, spawned
workers). A new schedule or precision is one line in SCHEDULES or PRECISIONS; a new backbone is a module in
nnunet_mae/backbones.
"""

from __future__ import annotations

from nnunet_mae.backbones import backbones_for
from nnunet_mae.training.finetune_trainer import nnUNetTrainerMAEFinetune, nnUNetTrainerMAEFinetune_patchdec
from nnunet_mae.training.gmim_trainer import nnUNetTrainerGMIMFinetune, nnUNetTrainerGMIMPretrain
from nnunet_mae.training.mae_trainer import nnUNetTrainerMAEPretrain, nnUNetTrainerMAEPretrain_normpix
from nnunet_mae.training.schedules import BF16, FP32, Epochs5, Epochs50, Epochs250, Smoke
from nnunet_mae.training.vit_trainer import nnUNetTrainerViT

SCHEDULES = {"smoke": Smoke, "5epochs": Epochs5, "50epochs": Epochs50, "250epochs": Epochs250}
PRECISIONS = {"fp32": FP32, "bf16": BF16}
METHODS = {"mae": (nnUNetTrainerMAEPretrain, nnUNetTrainerMAEFinetune),
           "gmim": (nnUNetTrainerGMIMPretrain, nnUNetTrainerGMIMFinetune)}


class nnUNetTrainerViT_patchdec(nnUNetTrainerViT):
    decoder = "patch"


class nnUNetTrainerViT_T(nnUNetTrainerViT):
    vit_preset = "T"


class nnUNetTrainerViT_B(nnUNetTrainerViT):
    vit_preset = "B"


class nnUNetTrainerViT_token16(nnUNetTrainerViT):
    token_size = 16


def _make(name: str, bases: tuple, attributes: dict) -> type:
    cls = type(name, bases, {"__module__": __name__, "__qualname__": name, **attributes})
    globals()[name] = cls
    return cls


def _backbone_trainers() -> list[type]:
    """The base trainers, the design variants, and every method's pair on every backbone variant."""
    made = [nnUNetTrainerViT, nnUNetTrainerViT_patchdec, nnUNetTrainerViT_T, nnUNetTrainerViT_B,
            nnUNetTrainerViT_token16, nnUNetTrainerMAEPretrain_normpix, nnUNetTrainerMAEFinetune_patchdec]
    for method, (pretrain, finetune) in METHODS.items():
        made += [pretrain, finetune]
        for family in backbones_for(method=method):
            fine_variants = family.variants("finetuning")
            for suffix, attributes in family.variants("pretraining").items():
                if not suffix:
                    continue  # the base trainers themselves
                pre_name, fine_name = f"{pretrain.__name__}_{suffix}", f"{finetune.__name__}_{suffix}"
                made.append(_make(pre_name, (pretrain,), {**attributes, "finetune_trainer_name": fine_name}))
                made.append(_make(fine_name, (finetune,), {**fine_variants[suffix], "pretrain_trainer_name": pre_name}))
    return made


def _schedule_and_precision_variants(base: type) -> None:
    for schedule in [None, *SCHEDULES]:
        for precision in [None, *PRECISIONS]:
            if schedule is None and precision is None:
                continue
            name = base.__name__ + "".join(f"_{s}" for s in (schedule, precision) if s)
            mixins = tuple(m for m in (SCHEDULES.get(schedule), PRECISIONS.get(precision)) if m)
            pairing = {}
            if schedule == "smoke":  # smoke runs pair with smoke runs
                for key in ("finetune_trainer_name", "pretrain_trainer_name"):
                    if key in _pairing_keys(base):
                        pairing[key] = getattr(base, key) + "_smoke"
            _make(name, (*mixins, base), pairing)


def _pairing_keys(base: type) -> set[str]:
    return {"pretraining": {"finetune_trainer_name"}, "finetuning": {"pretrain_trainer_name"}}.get(
        base.trainer_kind, set())


for _base in _backbone_trainers():
    globals()[_base.__name__] = _base
    _schedule_and_precision_variants(_base)

__all__ = sorted(name for name in dir() if name.startswith("nnUNetTrainer"))
