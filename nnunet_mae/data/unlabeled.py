"""Unlabeled images for pre-training, preprocessed exactly like the labelled cases of a target dataset.

Images without labels are run through the target configuration's own nnU-Net preprocessor
(`run_case_save` with no segmentation): the same transposition, cropping to the non-zero region, normalisation
(CT clipping and statistics from the target's fingerprint) and resampling as the labelled cases. They are written
to `<nnUNet_preprocessed>/<dataset>/<data_identifier>_unlabeled/`, a folder nnU-Net's own trainers and splits
never read; the pre-training trainers add its cases to their training set.

Each case is written to a temporary folder and renamed into place, its `.pkl` last: a case whose `.pkl` exists
is complete, so an interrupted run resumes by skipping those.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

UNLABELED_SUFFIX = "_unlabeled"
CASE_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def unlabeled_folder(preprocessed_dataset_folder_base: str | os.PathLike, data_identifier: str) -> Path:
    """Where the unlabeled cases of one configuration live (beside nnU-Net's own `<data_identifier>` folder)."""
    return Path(preprocessed_dataset_folder_base) / f"{data_identifier}{UNLABELED_SUFFIX}"


def unlabeled_identifiers(folder: str | os.PathLike) -> list[str]:
    """Complete unlabeled cases in `folder` (those whose `.pkl`, written last, exists)."""
    folder = Path(folder)
    return sorted(p.stem for p in folder.glob("*.pkl")) if folder.is_dir() else []


@dataclass(frozen=True)
class Case:
    identifier: str
    files: tuple[Path, ...]  # one per channel, in channel order


@dataclass
class Collected:
    cases: list[Case] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # file or case -> why


def collect_cases(folder: str | os.PathLike, file_ending: str, num_channels: int, prefix: str = "") -> Collected:
    """Group `folder`'s images by case (nnU-Net raw naming `<case>_<XXXX><file_ending>`) and check each."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder. Give folders of images in nnU-Net's raw naming "
                                f"(case_0000{file_ending}, one file per channel), or --from_dataset ID.")
    collected, channels = Collected(), {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if not path.name.endswith(file_ending):
            collected.rejected[str(path)] = (f"file ending is not the dataset's {file_ending!r} (rename or convert "
                                             f"it, e.g. with SimpleITK)")
            continue
        match = CASE_FILE.match(path.name[: -len(file_ending)])
        if match is None:
            collected.rejected[str(path)] = f"name is not <case>_<XXXX>{file_ending} (the channel number, e.g. _0000)"
            continue
        channels.setdefault(match["case"], {})[int(match["channel"])] = path
    for case, files in sorted(channels.items()):
        if sorted(files) != list(range(num_channels)):
            found = ", ".join(f"_{c:04d}" for c in sorted(files))
            collected.rejected[str(folder / case)] = (f"has channel files {found}; the dataset has {num_channels} "
                                                      f"channel(s): _0000 to _{num_channels - 1:04d}")
            continue
        collected.cases.append(Case(prefix + case, tuple(files[c] for c in range(num_channels))))
    return collected


def preprocess_case(case: Case, out_folder: Path, plans: dict, configuration: str, dataset_json: dict) -> str:
    """Preprocess one case into out_folder with the target's plans; returns "" or why it was rejected."""
    from batchgenerators.utilities.file_and_folder_operations import load_pickle, write_pickle
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(plans)
    configuration_manager = plans_manager.get_configuration(configuration)
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    tmp = out_folder / f".tmp-{os.getpid()}-{case.identifier}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        problem = _check_raw_images(case.files, plans_manager)
        if problem:
            return problem
        try:
            preprocessor.run_case_save(str(tmp / case.identifier), [str(f) for f in case.files], None, plans_manager,
                                       configuration_manager, dataset_json)
        except Exception as e:  # unreadable file, channels of different geometry, ...
            return f"could not be read and preprocessed ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        properties = load_pickle(str(tmp / f"{case.identifier}.pkl"))
        problem = _check_geometry_and_values(tmp, case.identifier, properties)
        if problem:
            return problem
        # nnU-Net's data loader reads class_locations; unlabeled cases have none (pre-training never oversamples)
        label_manager = plans_manager.get_label_manager(dataset_json)
        keys = list(label_manager.foreground_regions if label_manager.has_regions else label_manager.foreground_labels)
        if label_manager.has_ignore_label:
            keys.append(tuple([-1] + label_manager.all_labels))
        ndim = len(properties["shape_after_cropping_and_before_resampling"])
        properties["class_locations"] = {k: np.zeros((0, ndim + 1), dtype=np.int64) for k in keys}
        properties["nnunet_mae_unlabeled_source"] = [str(f) for f in case.files]
        write_pickle(properties, str(tmp / f"{case.identifier}.pkl"))
        files = sorted(tmp.iterdir(), key=lambda p: p.suffix == ".pkl")  # the .pkl last: it marks a complete case
        for f in files:
            os.replace(f, out_folder / f.name)
        return ""
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_raw_images(files: list[Path], plans_manager) -> str:
    """What nnU-Net's SimpleITK reader lets through silently: a gzip stream cut short (the volume comes back with
    the missing part as zeros, no error) and NaN voxels (ITK's NIfTI reader returns them as 0). NIfTI voxels are
    checked as stored, through nibabel (an nnU-Net dependency); other formats as nnU-Net's reader returns them."""
    import gzip
    import zlib

    for f in files:
        if str(f).endswith(".gz"):
            try:
                with gzip.open(f, "rb") as stream:
                    while stream.read(1 << 24):
                        pass
            except (EOFError, OSError, zlib.error) as e:
                return f"{Path(f).name} is not a complete gzip file ({type(e).__name__}: {e}); copy it again"
    bad = 0
    try:
        if all(str(f).endswith((".nii", ".nii.gz")) for f in files):
            import nibabel

            bad = sum(int(np.size(a) - np.count_nonzero(np.isfinite(a)))
                      for a in (np.asanyarray(nibabel.load(str(f)).dataobj) for f in files))
        else:
            data, _ = plans_manager.image_reader_writer_class().read_images([str(f) for f in files])
            bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    except Exception as e:  # unreadable
        return f"could not be read ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
    if bad:
        return f"has {bad} NaN or inf voxel(s) in the image file; fix or remove the image"
    return ""


def _check_geometry_and_values(folder: Path, identifier: str, properties: dict) -> str:
    spacing = np.asarray(properties.get("spacing", []), dtype=float)
    if spacing.size == 0 or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        return f"has an invalid voxel spacing {spacing.tolist()} in its header"
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    data, _, _, _ = nnUNetDatasetBlosc2(str(folder), [identifier]).load_case(identifier)
    data = np.asarray(data[:])
    if data.size == 0:
        return "is empty after cropping to its non-zero region (an all-zero image?)"
    if not np.all(np.isfinite(data)):
        return "contains NaN or inf voxels (after normalisation); fix or remove the image"
    return ""


def _preprocess_job(args) -> tuple[str, str]:
    case, out_folder, plans, configuration, dataset_json = args
    return case.identifier, preprocess_case(case, out_folder, plans, configuration, dataset_json)


@dataclass
class Summary:
    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # done by an earlier run
    rejected: dict[str, str] = field(default_factory=dict)
    folder: Path | None = None

    def format(self) -> str:
        lines = [f"{len(self.added)} case(s) added, {len(self.skipped)} skipped (already there), "
                 f"{len(self.rejected)} rejected; unlabeled cases now in {self.folder}: "
                 f"{len(unlabeled_identifiers(self.folder)) if self.folder else 0}."]
        lines += [f"  rejected {name}: {why}" for name, why in self.rejected.items()]
        return "\n".join(lines)


def add_unlabeled_cases(cases: list[Case], out_folder: Path, plans: dict, configuration: str, dataset_json: dict,
                        num_processes: int = 1, progress: bool = True, labelled: set[str] = frozenset()) -> Summary:
    """Preprocess `cases` into `out_folder` (resumable: complete cases are skipped)."""
    out_folder.mkdir(parents=True, exist_ok=True)
    for stale in out_folder.glob(".tmp-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    summary, done, todo, seen = Summary(folder=out_folder), set(unlabeled_identifiers(out_folder)), [], set()
    for case in cases:
        if case.identifier in labelled:
            summary.rejected[case.identifier] = ("has the identifier of a labelled training case; rename the files "
                                                 "(the pre-training would otherwise mix the two)")
        elif case.identifier in seen:
            summary.rejected[case.identifier] = "appears twice among the inputs (another folder has the same case)"
        elif case.identifier in done:
            summary.skipped.append(case.identifier)
        else:
            todo.append(case)
        seen.add(case.identifier)
    jobs = [(case, out_folder, plans, configuration, dataset_json) for case in todo]
    results = _run_jobs(jobs, num_processes, progress)
    files = {case.identifier: case.files[0] for case in todo}
    for identifier, why in results:
        if why:
            summary.rejected[f"{files[identifier]} (case {identifier})"] = why
        else:
            summary.added.append(identifier)
    return summary


def _run_jobs(jobs: list, num_processes: int, progress: bool) -> list[tuple[str, str]]:
    from tqdm import tqdm

    bar = dict(total=len(jobs), disable=not progress or not jobs, desc="preprocessing unlabeled cases")
    if num_processes <= 1 or len(jobs) <= 1:
        return [_preprocess_job(job) for job in tqdm(jobs, **bar)]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(min(num_processes, len(jobs))) as pool:
        return list(tqdm(pool.imap_unordered(_preprocess_job, jobs), **bar))
