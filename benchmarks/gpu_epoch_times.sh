#!/usr/bin/env bash
# Seconds per FER2013 training epoch of each network on a lent GPU, in one device call:
#
#   device run, timeout_s 480:  bash benchmarks/gpu_epoch_times.sh
#   here, as a dry run:         bash benchmarks/gpu_epoch_times.sh cpu 2
#
# FER2013 itself does not travel to the GPU machine (its csv is over the 64 MiB a call
# carries), so the faces timed are synthetic ones in FER2013's numbers (28,707 training,
# 3,591 val): an epoch's seconds depend on how many faces it holds, not on what they show.
# Arguments: device (default cuda), training steps per measurement (default 100), training faces
# per class (default 4101: FER2013's size), measurements of each (default 3); the test suite's dry
# run uses fewer. $PYTHON: the Python.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:-cuda}
steps=${2:-100}
per_class=${3:-4101}
repeats=${4:-3}
python=${PYTHON:-python3}
out=${OUT:-runs/gpu_epoch_times}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
mkdir -p "$out"
"$python" -c "from deep_emotion.data.synthetic_faces import write_synthetic_csv as w; w('$data/fer2013_synthetic.csv.gz', per_class=($per_class, max(1, $per_class // 8), 0))"
"$python" generate_data.py --data "$data" >/dev/null
{
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
    for arch in deep_emotion deep_emotion_vgg; do
        for precision in bf16 fp32; do
            "$python" benchmarks/train_throughput.py --data "$data" --device "$device" --arch "$arch" \
                --precision "$precision" --steps "$steps" --repeats "$repeats"
        done
    done
} 2>&1 | tee "$out/epoch_times.txt"
