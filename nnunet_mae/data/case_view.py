"""One folder of preprocessed cases gathered from several folders, by symbolic links.

nnU-Net's dataset classes read every case from one folder; the pre-training reads the labelled cases from
nnU-Net's preprocessed folder and the unlabeled ones from their own folder. A view folder of links (rebuilt at
every start, so it follows cases added since) lets nnU-Net's own dataset class and data loader read both.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# the files of one case in nnU-Net's preprocessed formats (blosc2 since 2.6, numpy before)
CASE_FILE_SUFFIXES = (".pkl", ".b2nd", "_seg.b2nd", ".npz", ".npy", "_seg.npy")


def case_view(view: Path, sources: dict[str, Path]) -> Path:
    """(Re)create `view` holding links to the files of each case `identifier` found in `sources[identifier]`."""
    tmp = view.with_name(f"{view.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for identifier, folder in sources.items():
        files = [p for p in folder.glob(f"{identifier}*") if p.name[len(identifier):] in CASE_FILE_SUFFIXES]
        if not any(p.suffix == ".pkl" for p in files):
            raise FileNotFoundError(f"Case {identifier} has no {identifier}.pkl in {folder}: preprocess it again.")
        for path in files:
            os.symlink(path.resolve(), tmp / path.name)
    shutil.rmtree(view, ignore_errors=True)
    os.replace(tmp, view)
    return view
