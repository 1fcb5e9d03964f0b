#!/usr/bin/env bash
# A new user's first session with `monai-app`, recorded as it runs: every command and what it printed.
#
#   bash scripts/first_session.sh [WORK_DIR] > docs/first_session.md
#
# Uses small synthetic data and a few CPU epochs so it finishes in minutes; the figures it prints are from that
# tiny run, not from real data. Needs the package installed (`make install`); runs `.venv/bin/monai-app` when
# there is one.
set -u
WORK=${1:-$(mktemp -d)}
APP=monai-app
[ -x .venv/bin/monai-app ] && APP=.venv/bin/monai-app
export PATH="$(dirname "$(command -v "$APP")"):$PATH"

run() {  # print the command as typed, then its output (stdout and stderr, as a terminal shows them)
  printf '\n$ %s\n' "$*"
  "$@" 2>&1 | sed -e 's/\r/\n/g' | grep -v -E '^\s*$| [0-9]{1,2}%\|'  # progress bars: their final state only
  return "${PIPESTATUS[0]}"
}

echo "# A first session with monai-app"
echo
echo "Recorded by \`scripts/first_session.sh\` on $(date -u +%Y-%m-%d), $(nproc) CPU cores, no GPU;"
echo "synthetic data and a handful of epochs, so the scores below only show the tools working (what training reaches is in each model card and in \`make demo\`)."
echo
echo '```console'
run monai-app --help
run monai-app list
run monai-app synth brats --out "$WORK/Task01_BrainTumour" --cases 8 --test-cases 1 --shape 64 64 48
run monai-app validate brats_unet3d --dataset-dir "$WORK/Task01_BrainTumour"
label=$(ls "$WORK"/Task01_BrainTumour/labelsTr/*.nii.gz | head -n 2 | tail -n 1)
cp "$label" "$WORK/broken.nii.gz"
head -c $(( $(stat -c %s "$label") / 2 )) "$WORK/broken.nii.gz" > "$label"
run monai-app validate brats_unet3d --dataset-dir "$WORK/Task01_BrainTumour"
echo "(exit status $?: one label file was cut short on purpose; put it back)"
cp "$WORK/broken.nii.gz" "$label"
run monai-app train brats_unet3d --dataset-dir "$WORK/Task01_BrainTumour" --output-dir "$WORK/run" \
    --max-epochs 12 --val_interval 4 --num_workers 0
run monai-app evaluate brats_unet3d --dataset-dir "$WORK/Task01_BrainTumour" --output-dir "$WORK/run" --num_workers 0
run monai-app report "$WORK/run"
run monai-app infer brats_unet3d --input "$WORK/Task01_BrainTumour/imagesTs" --output-dir "$WORK/predictions" \
    --ckpt "$WORK/run/models/model.pt"
run monai-app export brats_unet3d --ckpt "$WORK/run/models/model.pt"
run monai-app infer brats_unet3d --input "$WORK/Task01_BrainTumour/imagesTs" --output-dir "$WORK/predictions_ts" \
    --torchscript "$WORK/run/models/model.ts"
run monai-app synth camvid --out "$WORK/CamVid" --cases 16 --size 90 120
run monai-app validate camvid_unet2d --dataset-dir "$WORK/CamVid"
run monai-app train camvid_unet2d --dataset-dir "$WORK/CamVid" --output-dir "$WORK/camvid_run" --max-epochs 12 \
    --features "[8,16,32,64,128,8]" --num_workers 0
run monai-app evaluate camvid_unet2d --dataset-dir "$WORK/CamVid" --output-dir "$WORK/camvid_run" \
    --features "[8,16,32,64,128,8]" --num_workers 0
run monai-app infer camvid_unet2d --input "$WORK/CamVid/images_prepped_test" --output-dir "$WORK/camvid_predictions" \
    --ckpt "$WORK/camvid_run/models/model.pt" --features "[8,16,32,64,128,8]"
run monai-app export camvid_unet2d --ckpt "$WORK/camvid_run/models/model.pt" --features "[8,16,32,64,128,8]"
echo '```'
echo
echo "Work folder of this recording: \`$WORK\` (paths above point there)."
