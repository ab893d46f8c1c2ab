#!/usr/bin/env bash
# The face trunk's runs on a lent GPU, in one device call: fine-tunes face_resnet at two face inputs side
# by side, then distils the default and its light twin from the first one, and keeps every run's
# config.json, log.jsonl and best.pt under $OUT.
#
#   device run, timeout_s 600:  bash benchmarks/gpu_face_trunk.sh cuda 10 fer/ rafdb/
#   here, as a dry run:         bash benchmarks/gpu_face_trunk.sh cpu 1 voted_fer/ faces/ 2
#
# Arguments: device (default cuda), epochs (default 10), a prepared FER2013 folder with FER+'s votes
# (default data/fer, after `deep-emotion prepare --data data/fer`), a face folder such as RAF-DB, prepared
# here at each face input (default rafdb), training steps per epoch (default: whole epochs; the test
# suite's dry run uses a few).
# What travels with a device call is at most 64 MiB: RAF-DB's 50 MB fits, FER2013's csv (81 MB) and its
# prepared folder (129 MB) do not: carry a subset of its rows, prepared, or run it where the data lives.
# dlib's weights come from the installed `.[pretrained]` extra.
# $PYTHON: the Python; $WORKERS: threads a run (default 4: the runs share the machine's cores);
# $BATCH_SIZE: every run's batch (default: each recipe's); $SIZES: the face inputs, the teacher's first
# (default "150 112").
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-cuda}
epochs=${2:-10}
fer=${3:-data/fer}
faces=${4:-rafdb}
steps=${5:+--max_steps $5}
batch=${BATCH_SIZE:+--batch_size $BATCH_SIZE}
read -r -a sizes <<< "${SIZES:-150 112}"
python=${PYTHON:-python3}
workers=${WORKERS:-4}
out=${OUT:-runs/gpu_face_trunk}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

prepare() {  # prepare SOURCE OUT [flags]: a prepared copy in the work folder
    local source=$1 target=$2; shift 2
    "$python" -m deep_emotion prepare --data "$source" --out "$work/$target" "$@" >/dev/null
}
for size in "${sizes[@]}"; do
    prepare "$faces" "faces$size" --face_size "$size" --colour
    prepare "$faces" "faces_crop$size" --framing as_given --face_size "$size" --colour
done

runs=()
train() {  # train NAME [flags]: one run in the background, its log in $out/NAME.log
    local name=$1; shift
    "$python" main.py --train --out "$work/runs/$name" --device "$device" --workers "$workers" \
        --targets votes --source_weights 2 1 1 --epochs "$epochs" --schedule_epochs "$epochs" $steps $batch "$@" \
        >"$out/$name.log" 2>&1 &
    runs+=($!)
}
finish() {  # waits for the runs started; a failed one stops the script, its log says why
    for pid in "${runs[@]}"; do
        wait "$pid" || { echo "a run failed: see its log in $out" >&2; exit 1; }
    done
    runs=()
}
face_resnet() {  # face_resnet SIZE: the trunk fine-tuned whole at SIZE x SIZE colour faces
    echo "--arch face_resnet --arch_args {\"input_size\":$1,\"image_size\":$1,\"in_channels\":3,\"frozen_stages\":0,\"heads\":[\"ferplus\",\"fer2013\"]}"
}
for size in "${sizes[@]}"; do
    # shellcheck disable=SC2046  # face_resnet's words are meant to split
    train "face_resnet$size" --data "$fer" "$work/faces$size" "$work/faces_crop$size" $(face_resnet "$size")
done
finish

teacher=$(ls "$work/runs/face_resnet${sizes[0]}"/*/best.pt)
for student in deep_emotion_light:20 deep_emotion_vgg_heads:48; do  # the shipped networks, fine-tuned from themselves
    train "${student%:*}"_distilled --data "$fer" "$work/faces${sizes[0]}" "$work/faces_crop${sizes[0]}" \
        --init "deep_emotion/weights/${student%:*}.pt" --arch deep_emotion_vgg \
        --arch_args "{\"width\":${student#*:},\"heads\":[\"ferplus\",\"fer2013\"]}" \
        --teacher "$teacher" --learning_rate 0.01 --warmup_epochs 0.5
done
finish

for run in "$work"/runs/*/*/; do
    name=$(basename "$(dirname "$run")")
    mkdir -p "$out/$name"
    cp "$run"config.json "$run"log.jsonl "$run"best.pt "$out/$name/"
done
ls "$out"
