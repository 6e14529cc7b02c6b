# The two ensemble members of issue 11's recipe, one definition for train/cpu_recipe.sh and
# train/gpu_recipe.sh (sourced; DATA must be set). Each is an ordinary `emocam-train fit`.
# Also the CPU recipe's run folders, which train/recipe_checkpoints.sh keeps in git.
#
# Member 1: the vgg-m-sized pooling net on random 40x40 crops, one 100-epoch cosine schedule,
# weight EMA. (A 200-epoch schedule of it, run 2026-12-01..02 and lost with its machine, plateaued
# at 68-69.6% validation from epoch ~110 on while its validation loss rose: the second hundred
# epochs bought nothing, so both members now get 100.) Member 2: a narrow ResNet-18 on the same
# crops, a different network so the two err differently, which is what makes an ensemble pay.
# Both use seed 1337: --seed also draws the validation split, and the ensemble is chosen on that
# split, so neither member may have trained on the other's validation faces.
# Precision: bf16, settled by the first 10 epochs of member 1 in both precisions (docs/training.md):
# float32 led by 0.63 points, under the 1-point rule fixed beforehand, at 1.15x the time an epoch.
PRECISION=mixed_bfloat16
M1_RUN=runs/m1-bf16
M2_RUN=runs/m2-resnet
M1_EPOCHS=100
M2_EPOCHS=100
M1=(--data "$DATA" --architecture vgg-m-pool --crop 40 --ema 0.999 --epochs "$M1_EPOCHS" --batch-size 128
    --learning-rate 0.04 --warmup-epochs 3 --patience "$M1_EPOCHS" --shift 0.05 --seed 1337 --quiet)
M2=(--data "$DATA" --architecture resnet18-n --crop 40 --ema 0.999 --epochs "$M2_EPOCHS" --batch-size 128
    --learning-rate 0.05 --warmup-epochs 3 --patience "$M2_EPOCHS" --shift 0.05 --seed 1337 --quiet)

epochs_done() {  # epochs_done RUN_DIR: the epochs its state.json records, 0 without one
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['epoch'])" "$1/state.json" 2>/dev/null || echo 0
}
