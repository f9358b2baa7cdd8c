#!/bin/bash
# benchmarks/mae_recipe.py's recipes, cut short: each named recipe pre-trained only to its epoch-12 snapshot (1,200
# iterations, the 40-epoch schedule's first 12 epochs), then probed after epochs 1, 4, 12 (crop seed 0), and the
# report rebuilt. Needs a workspace prepared by mae_recipe.py (its pretrain stage writes raw/ and preprocessed/).
#   WORK=/tmp/mae_recipe bash benchmarks/mae_recipe_1200.sh normpix lr1e4 dec8
WORK=${WORK:-/tmp/nnunet_mae_recipe}
cd "$(dirname "$0")/.."
export nnUNet_raw=$WORK/raw nnUNet_preprocessed=$WORK/preprocessed nnUNet_results=$WORK/results
export nnUNet_extTrainer=$PWD/benchmarks/trainers nnUNet_n_proc_DA=2
R=$WORK/results/Dataset004_Hippocampus
for recipe in "$@"; do
F=$R/nnUNetTrainerMAEPretrain_recipe_${recipe}__nnUNetPlans__3d_fullres
if [ ! -f $F/fold_all/snapshots/epoch_0012.pth ]; then
  [ -d $F ] && mv $F $F.old_$(date +%s)
  echo "$(date +%T) $recipe start"; lscpu | grep "Model name"
  nnUNetv2_train 4 3d_fullres all -tr nnUNetTrainerMAEPretrain_recipe_$recipe -device cpu > $WORK/logs/pretrain_${recipe}_1200.log 2>&1 &
  PID=$!
  until [ -f $F/fold_all/snapshots/epoch_0012.pth ]; do sleep 5; kill -0 $PID 2>/dev/null || break; done
  sleep 5; kill $PID; wait $PID
  echo "$(date +%T) $recipe stopped after the epoch-12 snapshot"
fi
python3 - "$WORK" $recipe <<'PY'
import sys
sys.path.insert(0, "benchmarks")
import mae_recipe
work, recipe = sys.argv[1], sys.argv[2]
args = mae_recipe.parse(["--work", work, "--recipes", ",".join(mae_recipe.RECIPES), "--seeds", "1"])
for e in [1, 4, 12]:
    snap = mae_recipe.run_folder(args, recipe) / "snapshots" / f"epoch_{e:04d}.pth"
    out = args.work / "probes" / recipe / f"epoch_{e:04d}.json"
    if snap.is_file() and not out.is_file():
        mae_recipe.probe_one(args, snap, out)
from mae_recipe_report import write_report
write_report(args)
PY
echo "$(date +%T) $recipe probes done"
done
