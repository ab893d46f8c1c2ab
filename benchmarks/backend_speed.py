"""Classification speed of each backend: one face (latency) and batches of 64 (throughput), on this CPU.

    python benchmarks/backend_speed.py --model weights/deep_emotion_vgg.pt --data data --repeats 5

Backends: PyTorch fp32 as loaded (as training and calibration run it), PyTorch fp32 with its norms folded
and channels-last weights (model.fold_for_inference, as the API and the live pipeline run it), PyTorch bf16
autocast (where the CPU has native bf16), onnxruntime fp32 and onnxruntime with int8 weights (export_onnx.py
--int8). The faces are the checkpoint's own (48x48 grey, 150x150 colour, ...). With --data, each backend's
PublicTest accuracy is printed too (int8 is worth shipping only within 0.5 points of fp32).
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import add_json_flag, median_report, run_benchmark, write_json

from deep_emotion.data.loaders import load_split
from deep_emotion.engine import cpu_has_native_bf16
from deep_emotion.inference import load_model, predict
from deep_emotion.model import fold_for_inference
from deep_emotion.onnx_classifier import OnnxClassifier
from deep_emotion.onnx_export import export
from deep_emotion.recognizer import DEFAULT_MODEL


def timed(function, repeats, calls):
    """Seconds per call: the median over repeats of the mean over calls."""
    function()  # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        runs.append((time.perf_counter() - start) / calls)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL),
                        help="checkpoint (default: deep_emotion/weights/deep_emotion_pair.pt)")
    parser.add_argument("--data", default="", help="prepared FER2013 folder, for PublicTest accuracy (default: none)")
    parser.add_argument("--threads", type=int, default=1, help="threads of each backend (default: 1, as live)")
    parser.add_argument("--repeats", type=int, default=5, help="measurements of each (default: 5)")
    add_json_flag(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, checkpoint = load_model(args.model)
    normalization, temperature = tuple(checkpoint["normalization"]), checkpoint.get("temperature", 1.0)
    clahe = checkpoint.get("clahe", False)
    folded = fold_for_inference(load_model(args.model)[0])
    folder = Path(tempfile.mkdtemp())
    backends = {
        "pytorch fp32": lambda faces: predict(model, torch.from_numpy(faces), normalization, "cpu",
                                              temperature=temperature, clahe=clahe),
        "pytorch fp32 folded": lambda faces: predict(folded, torch.from_numpy(faces), normalization, "cpu",
                                                     temperature=temperature, clahe=clahe),
        "onnxruntime fp32": OnnxClassifier(export(args.model, folder / "fp32.onnx"), threads=args.threads).predict,
        "onnxruntime int8": OnnxClassifier(export(args.model, folder / "int8.onnx", int8=True),
                                           threads=args.threads).predict,
    }
    if cpu_has_native_bf16():
        backends["pytorch bf16"] = lambda faces: predict(model, torch.from_numpy(faces), normalization, "cpu",
                                                         autocast_dtype=torch.bfloat16, temperature=temperature,
                                                         clahe=clahe)
    rng = np.random.default_rng(0)
    face_input = model.face_input
    one, batch = (rng.integers(0, 256, face_input.shape(n), dtype=np.uint8) for n in (1, 64))
    print(f"{args.model} ({face_input.describe()} faces), {args.threads} thread(s)")
    accuracies = {}
    for name, run in backends.items():
        latency = median_report(f"{name:>19}: one face", [1000 * s for s in timed(lambda: run(one), args.repeats, 50)],
                                "ms")
        per_batch = timed(lambda: run(batch), args.repeats, 5)
        median_report(f"{name:>19}: batch of 64", [64 / s for s in per_batch], "faces/s")
        if args.data:
            images, labels, _ = load_split(args.data, "val", face_input=face_input)
            accuracy = (np.asarray(run(images.numpy())).argmax(1) == labels.numpy()).mean()
            print(f"{name:>19}: PublicTest {100 * accuracy:.2f}% (latency {latency:.2f} ms)")
            accuracies[name] = float(accuracy)
    write_json(args.json, {"publictest_accuracy": accuracies})


if __name__ == "__main__":
    run_benchmark(main)
