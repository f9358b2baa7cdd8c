"""`nnUNetv2_predict` speed per case on Hippocampus 3d_fullres: nnU-Net's CNN and Primus-S against the ViT.

For each trainer the network is built as `nnUNetv2_predict` builds it (the trainer class's
`build_network_architecture` with the plans; the ViT trainers round the patch to the token grid as their results'
plans.json does) and handed to nnU-Net's own `nnUNetPredictor` (`manual_initialization`), which then predicts
raw cases one by one with `predict_from_files_sequential`: reading, preprocessing, sliding window (step 0.5,
Gaussian weighting, mirroring on all three axes: nnU-Net's defaults), resampling and export. Weights are random:
they do not change the work done. The first case is a warm-up; the median over the others is reported.

    python benchmarks/inference_speed.py                 # about 10 minutes on 2 CPU cores
    python benchmarks/inference_speed.py --device cuda --cases 20

Needs Dataset004_Hippocampus preprocessed in --work (benchmarks/segmentation_quality.py lays it out).
Writes results.json and results.md into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import CONFIGURATION, DATASET, SHORT, find_trainer_class, machine_info  # noqa: E402

TRAINERS = ["nnUNetTrainer", "nnUNet_Primus_S_Trainer", "nnUNetTrainerViT", "nnUNetTrainerViT_patchdec"]


def build_predictor(trainer_name: str, device):
    import torch
    from batchgenerators.utilities.file_and_folder_operations import join, load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    base = join(os.environ["nnUNet_preprocessed"], DATASET)
    plans = load_json(join(base, "nnUNetPlans.json"))
    plans["continue_training"] = False
    dataset_json = load_json(join(base, "dataset.json"))
    trainer = find_trainer_class(trainer_name)(plans=plans, configuration=CONFIGURATION, fold=0,
                                               dataset_json=dataset_json, device=device)
    num_inputs = len(dataset_json["channel_names"])
    network = trainer.build_network_architecture(trainer.plans_manager, trainer.configuration_manager, num_inputs,
                                                 trainer.label_manager.num_segmentation_heads, False).to(device)
    predictor = nnUNetPredictor(device=device, verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(network, trainer.plans_manager, trainer.configuration_manager,
                                    [network.state_dict()], dataset_json, trainer_name, (0, 1, 2))
    parameters = sum(p.numel() for p in network.parameters())
    del trainer
    torch.manual_seed(0)
    return predictor, parameters


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainers", default=",".join(TRAINERS))
    parser.add_argument("--cases", type=int, default=6, help="cases to predict per trainer (the first is warm-up)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet_mae_quality"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "inference_speed")
    args = parser.parse_args(argv)
    os.environ.setdefault("nnUNet_preprocessed", str(args.work / "preprocessed"))
    os.environ.setdefault("nnUNet_raw", str(args.work / "raw"))
    # the trainers are only built to make their networks: their log folders go to a throw-away results folder
    scratch_results = tempfile.TemporaryDirectory()
    os.environ["nnUNet_results"] = scratch_results.name
    import torch

    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count())  # as nnUNetv2_predict -device cpu
    images = sorted((args.work / "raw" / DATASET / "imagesTr").glob("*_0000.nii.gz"))[: args.cases]
    if len(images) < 2:
        raise SystemExit(f"Need at least 2 images in {args.work / 'raw' / DATASET / 'imagesTr'}.")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    results = {"date": started, "machine": machine_info(args.device), "load_average": os.getloadavg(),
               "command": "python3 " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]), "cases": len(images),
               "trainers": {}}
    for name in args.trainers.split(","):
        predictor, parameters = build_predictor(name, device)
        seconds = []
        with tempfile.TemporaryDirectory() as out:
            for image in images:
                t = time.perf_counter()
                predictor.predict_from_files_sequential([[str(image)]], [os.path.join(out, image.name[:-12])],
                                                        save_probabilities=False, overwrite=True)
                seconds.append(time.perf_counter() - t)
        timed = seconds[1:]
        results["trainers"][name] = {"parameters": parameters, "seconds_per_case": timed,
                                     "median": statistics.median(timed), "warmup": seconds[0],
                                     "patch_size": list(predictor.configuration_manager.patch_size)}
        print(f"{name}: median {statistics.median(timed):.2f} s per case over {len(timed)} cases", flush=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results, args.out)
    return 0


def write_report(results: dict, out: Path) -> None:
    machine = results["machine"]
    cnn = results["trainers"].get("nnUNetTrainer", {}).get("median")
    lines = [f"# nnUNetv2_predict speed, {DATASET} {CONFIGURATION}", "",
             f"{results['date']} on {machine.get('cpu')} ({machine['cpu_count']} cores), torch {machine['torch']}, "
             f"device {machine['device']}; load average at start {results['load_average'][0]:.2f}.", "",
             f"Command: `{results['command']}`. Per case: read, preprocess, sliding window (step 0.5, Gaussian, "
             f"mirroring on 3 axes), resample, export; median over {results['cases'] - 1} cases after one warm-up.",
             "", "| trainer | patch | parameters | s / case (median) | vs CNN |", "|---|---|---|---|---|"]
    for name, r in results["trainers"].items():
        ratio = f"{r['median'] / cnn:.2f}" if cnn else "-"
        lines.append(f"| {SHORT.get(name, name)} | {'x'.join(map(str, r['patch_size']))} | "
                     f"{r['parameters'] / 1e6:.1f} M | {r['median']:.2f} | {ratio} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
