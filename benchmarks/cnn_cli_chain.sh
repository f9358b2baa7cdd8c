#!/bin/bash
# The CNN MAE command-line chain on Hippocampus at smoke budgets (documentation/benchmarks.md, "MAE for nnU-Net's CNN"):
# pre-train (ResEnc M and nnUNetPlans), nnU-Net's stock trainer with -pretrained_weights, the automatic fine-tuner.
# Resumable by stage (a stage whose checkpoint_final.pth exists is skipped); logs and the CPU model in $WORK/logs.
#   nnUNet_raw=... nnUNet_preprocessed=... WORK=/tmp/cnn_chain bash benchmarks/cnn_cli_chain.sh
# Needs Dataset004_Hippocampus planned and preprocessed with nnUNetPlans (nnUNetv2_plan_and_preprocess -d 4 -c 3d_fullres).
# On 2 CPU cores the ResEnc M plans' batch size (58 as planned) is set to 4 in nnUNetResEncUNetMPlans.json.
set -u
WORK=${WORK:-/tmp/cnn_chain}
export nnUNet_results=$WORK/results
export nnUNet_n_proc_DA=2 nnUNet_extTrainer=$(python3 -c "import nnunet_mae.nnunet_ext as e; print(e.EXT_TRAINER_DIR)")
L=$WORK/logs; mkdir -p $L
lscpu | grep "Model name" > $L/cpu.txt
R=$nnUNet_results/Dataset004_Hippocampus
stage() {  # name, folder-to-check, command...
  local name=$1 done=$2; shift 2
  if [ -f "$done/checkpoint_final.pth" ]; then echo "skip $name"; return; fi
  echo "$(date +%T) start $name"; /usr/bin/time -v "$@" > $L/$name.log 2>&1; echo "$(date +%T) end $name rc=$?"
}
if [ ! -f $nnUNet_preprocessed/Dataset004_Hippocampus/nnUNetResEncUNetMPlans.json ]; then
  nnUNetv2_plan_experiment -d 4 -pl nnUNetPlannerResEncM > $L/plan.log 2>&1
  python3 - "$nnUNet_preprocessed/Dataset004_Hippocampus/nnUNetResEncUNetMPlans.json" <<'PY'
import json, sys
plans = json.load(open(sys.argv[1]))
plans["configurations"]["3d_fullres"]["batch_size"] = 4  # planned for a 24 GB GPU; 2 CPU cores
json.dump(plans, open(sys.argv[1], "w"), indent=4)
PY
fi
if [ ! -d $nnUNet_preprocessed/Dataset004_Hippocampus/nnUNetResEncUNetMPlans_3d_fullres ]; then
  nnUNetv2_preprocess -d 4 -plans_name nnUNetResEncUNetMPlans -c 3d_fullres -np 2 > $L/preprocess.log 2>&1
fi
P=nnUNetResEncUNetMPlans
stage pretrain_M $R/nnUNetTrainerMAEPretrain_CNN_smoke__${P}__3d_fullres/fold_all \
  nnUNetv2_train 4 3d_fullres all -tr nnUNetTrainerMAEPretrain_CNN_smoke -p $P -device cpu
stage stock_M $R/nnUNetTrainer_1epoch__${P}__3d_fullres/fold_0 \
  nnUNetv2_train 4 3d_fullres 0 -tr nnUNetTrainer_1epoch -p $P -device cpu \
  -pretrained_weights $R/nnUNetTrainerMAEPretrain_CNN_smoke__${P}__3d_fullres/fold_all/checkpoint_final.pth
stage finetune_M $R/nnUNetTrainerMAEFinetune_CNN_smoke__${P}__3d_fullres/fold_0 \
  nnUNetv2_train 4 3d_fullres 0 -tr nnUNetTrainerMAEFinetune_CNN_smoke -p $P -device cpu
P=nnUNetPlans
stage pretrain_plain $R/nnUNetTrainerMAEPretrain_CNN_smoke__${P}__3d_fullres/fold_all \
  nnUNetv2_train 4 3d_fullres all -tr nnUNetTrainerMAEPretrain_CNN_smoke -p $P -device cpu
stage finetune_plain $R/nnUNetTrainerMAEFinetune_CNN_smoke__${P}__3d_fullres/fold_0 \
  nnUNetv2_train 4 3d_fullres 0 -tr nnUNetTrainerMAEFinetune_CNN_smoke -p $P -device cpu
echo "$(date +%T) chain done"
