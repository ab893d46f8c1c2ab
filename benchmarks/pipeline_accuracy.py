"""Accuracy through the live pipeline (Haar detection, FER framing, classification) against direct classification.

    python benchmarks/pipeline_accuracy.py --data data --split val --count 600

Each face is upscaled to 192x192 and pasted into a grey 640x480 frame, as a
photograph would show it; the pipeline must find it and classify its own crop.
"""
import argparse

import cv2
import numpy as np
from common import run_benchmark

from deep_emotion.data.loaders import load_split
from deep_emotion.recognizer import DEFAULT_MODEL, EmotionRecognizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data", help="prepared data folder (default: data)")
    parser.add_argument("--split", default="val", help="labelled split (default: val)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL),
                        help="checkpoint (default: deep_emotion/weights/deep_emotion_pair.pt)")
    parser.add_argument("--count", type=int, default=600, help="faces (default: 600)")
    args = parser.parse_args()
    images, labels, _ = load_split(args.data, args.split)
    chosen = np.random.default_rng(0).choice(len(images), min(args.count, len(images)), replace=False)
    recognizer = EmotionRecognizer(args.model)
    direct = recognizer.classify([images[i].numpy() for i in chosen]).argmax(1)
    found, direct_right, pipeline_right = 0, 0, 0
    for k, i in enumerate(chosen):
        frame = np.full((480, 640, 3), 128, np.uint8)
        face = cv2.resize(images[i].numpy(), (192, 192), interpolation=cv2.INTER_CUBIC)
        frame[144:336, 224:416] = face[:, :, None]
        results = recognizer.detect_emotions(frame)
        if results:  # compare both ways on the faces the cascade finds
            found += 1
            direct_right += direct[k] == labels[i].item()
            pipeline_right += recognizer.class_names.index(results[0]["label"]) == labels[i].item()
    print(f"{args.model} on {args.split}: the Haar cascade found {found} of {len(chosen)} faces; on those,")
    print(f"  direct classification of the 48x48 face: {100 * direct_right / max(found, 1):.2f}%")
    print(f"  through the pipeline (detect, crop, resize): {100 * pipeline_right / max(found, 1):.2f}%")


if __name__ == "__main__":
    run_benchmark(main)
