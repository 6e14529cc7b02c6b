# The two ensemble members of issue 11's recipe, one definition for train/cpu_recipe.sh and
# train/gpu_recipe.sh (sourced; DATA must be set). Each is an ordinary `emocam-train fit`.
#
# Member 1: the vgg-m-sized pooling net on random 40x40 crops, one 200-epoch cosine schedule,
# weight EMA. Member 2: a narrow ResNet-18 on the same crops, a different network so the two err
# differently, which is what makes an ensemble pay.
# Both use seed 1337: --seed also draws the validation split, and the ensemble is chosen on that
# split, so neither member may have trained on the other's validation faces.
M1_EPOCHS=200
M2_EPOCHS=150
M1=(--data "$DATA" --architecture vgg-m-pool --crop 40 --ema 0.999 --epochs "$M1_EPOCHS" --batch-size 128
    --learning-rate 0.04 --warmup-epochs 3 --patience "$M1_EPOCHS" --shift 0.05 --seed 1337 --quiet)
M2=(--data "$DATA" --architecture resnet18-n --crop 40 --ema 0.999 --epochs "$M2_EPOCHS" --batch-size 128
    --learning-rate 0.05 --warmup-epochs 3 --patience "$M2_EPOCHS" --shift 0.05 --seed 1337 --quiet)
