"""`nnunet_mae add_unlabeled`: add images without labels to a dataset's pre-training, in its own plans.

    nnunet_mae add_unlabeled -d 4 -i /data/unlabeled_scans [/data/more ...] [-c 3d_fullres] [-np 8]
    nnunet_mae add_unlabeled -d 4 --from_dataset 5            # the images of another raw dataset
    nnunet_mae add_unlabeled -d 4 --include_imagesTs          # the dataset's own test images

Images are preprocessed by the target configuration's nnU-Net preprocessor (resampling, normalisation with the
target's fingerprint, cropping, transposition exactly as for the labelled cases) into
`$nnUNet_preprocessed/<dataset>/<data_identifier>_unlabeled/`, which nnU-Net's own trainers and splits never
see. The pre-training trainers (nnUNetTrainerMAEPretrain, nnUNetTrainerGMIMPretrain and their variants) then
train on the labelled training images plus these cases. Nothing in nnUNet_raw is modified. Re-running skips the
cases already done (an interrupted run resumes).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from nnunet_mae.data.dataset_json import channel_names


def _dataset_name(dataset: str) -> str:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(dataset)
    except RuntimeError as e:
        raise SystemExit(f"Dataset {dataset!r} was not found in nnUNet_raw / nnUNet_preprocessed / nnUNet_results "
                         f"({e}).") from None


def _load_target(dataset: str, plans_name: str, configuration: str):
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.paths import nnUNet_preprocessed

    if not nnUNet_preprocessed:
        raise SystemExit("nnUNet_preprocessed is not set: export it as for nnUNetv2_plan_and_preprocess.")
    name = _dataset_name(dataset)
    base = Path(nnUNet_preprocessed) / name
    plans_file, dataset_file = base / f"{plans_name}.json", base / "dataset.json"
    if not plans_file.is_file():
        raise SystemExit(f"{plans_file} does not exist: plan and preprocess the dataset first "
                         f"(nnUNetv2_plan_and_preprocess -d {dataset} -c {configuration}).")
    plans, dataset_json = load_json(str(plans_file)), load_json(str(dataset_file))
    if configuration not in plans["configurations"]:
        raise SystemExit(f"{plans_file} has no configuration {configuration!r}; it has "
                         f"{', '.join(plans['configurations'])}.")
    return name, base, plans, dataset_json


def _raw_dataset(dataset: str) -> tuple[Path, dict]:
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.paths import nnUNet_raw

    folder = Path(nnUNet_raw or "") / _dataset_name(dataset)
    if not (folder / "dataset.json").is_file():
        raise SystemExit(f"{folder / 'dataset.json'} does not exist: --from_dataset and --include_imagesTs read the "
                         f"raw dataset from nnUNet_raw.")
    return folder, load_json(str(folder / "dataset.json"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnunet_mae add_unlabeled", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-d", required=True, help="target dataset (ID or name): its plans preprocess the images")
    parser.add_argument("-i", nargs="+", default=[], type=Path,
                        help="folders of images in nnU-Net raw naming (case_0000.nii.gz, one file per channel)")
    parser.add_argument("--from_dataset", nargs="+", default=[],
                        help="raw datasets (ID or name) whose imagesTr (and imagesTs) images are added")
    parser.add_argument("--include_imagesTs", action="store_true", help="add the target dataset's own imagesTs")
    parser.add_argument("-c", default="3d_fullres", help="configuration (default 3d_fullres)")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-np", type=int, default=int(os.environ.get("nnUNet_def_n_proc", 4)),
                        help="processes (default nnUNet_def_n_proc or 4)")
    return parser


def image_sources(args, name: str, dataset_json: dict, num_channels: int) -> list[tuple[Path, str, str]]:
    """(folder, file ending, case-name prefix) of every image folder the arguments name."""
    ending = dataset_json["file_ending"]
    sources: list[tuple[Path, str, str]] = [(folder, ending, "") for folder in args.i]
    if args.include_imagesTs:
        sources.append((_raw_dataset(args.d)[0] / "imagesTs", ending, ""))
    for other in args.from_dataset:
        folder, other_json = _raw_dataset(other)
        other_channels = len(channel_names(other_json))
        if other_channels != num_channels:
            raise SystemExit(f"{folder.name} has {other_channels} channel(s), {name} has {num_channels}: its images "
                             f"cannot be preprocessed with {name}'s plans.")
        theirs, ours = list(channel_names(other_json).values()), list(channel_names(dataset_json).values())
        if [str(c).lower() for c in theirs] != [str(c).lower() for c in ours]:
            print(f"Warning: {folder.name}'s channels are {theirs}, {name}'s are {ours}. Its images are normalised "
                  f"with {name}'s scheme and intensity statistics (e.g. CT clipping to {name}'s foreground range), "
                  f"which only makes sense for images of the same modality.", flush=True)
        for sub in ("imagesTr", "imagesTs"):
            if (folder / sub).is_dir():
                sources.append((folder / sub, other_json["file_ending"], f"{folder.name}__"))
    return sources


def collect_all(sources: list[tuple[Path, str, str]], num_channels: int):
    """The cases of every source folder and the files rejected there (with the reason)."""
    from nnunet_mae.data.unlabeled import Collected, collect_cases

    collected = Collected()
    for folder, file_ending, prefix in sources:
        try:
            part = collect_cases(folder, file_ending, num_channels, prefix)
        except FileNotFoundError as e:
            raise SystemExit(str(e)) from None
        collected.cases += part.cases
        collected.rejected.update(part.rejected)
    return collected


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.i or args.from_dataset or args.include_imagesTs):
        parser.error("give images: -i FOLDER [FOLDER ...], --from_dataset ID, or --include_imagesTs")

    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_mae.data.unlabeled import add_unlabeled_cases, unlabeled_folder

    name, base, plans, dataset_json = _load_target(args.d, args.p, args.c)
    num_channels = len(channel_names(dataset_json))
    sources = image_sources(args, name, dataset_json, num_channels)
    collected = collect_all(sources, num_channels)
    configuration = PlansManager(plans).get_configuration(args.c)
    out = unlabeled_folder(base, configuration.data_identifier)
    labelled = {p.stem for p in (base / configuration.data_identifier).glob("*.pkl")}
    print(f"{len(collected.cases)} case(s) found in {len(sources)} folder(s); preprocessing with {name}'s "
          f"{args.p} {args.c} into {out}", flush=True)
    existed = out.is_dir()
    summary = add_unlabeled_cases(collected.cases, out, plans, args.c, dataset_json, args.np, labelled=labelled)
    summary.rejected = {**collected.rejected, **summary.rejected}
    print(summary.format())
    if not (summary.added or summary.skipped):
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # nothing was added: leave no empty folder behind
        print(f"No case was added{': every one was rejected (reasons above)' if summary.rejected else ''}. "
              f"Pre-training on {name} is unchanged.", file=sys.stderr)
        return 1
    plans_option = [] if args.p == "nnUNetPlans" else ["-p", args.p]
    print(f"Pre-training on {name} {args.c} now uses the {len(labelled)} labelled training cases and these: "
          f"{shlex.join(['nnUNetv2_train', name, args.c, 'all', '-tr', 'nnUNetTrainerMAEPretrain', *plans_option])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
