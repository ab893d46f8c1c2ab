"""Export a checkpoint (STN included) to ONNX, for onnxruntime and anything else that reads ONNX.

    python export_onnx.py --model weights/deep_emotion_vgg.pt --out deep_emotion_vgg.onnx
    python export_onnx.py --model weights/deep_emotion.pt --out deep_emotion_int8.onnx --int8

The graph's input is `faces`, float32 (batch, 48, 48) greyscale in 0..255, with a dynamic
batch dimension; its output is `probabilities` (batch, 7). The checkpoint's input
normalisation and calibration temperature are inside the graph, and its metadata records
them with the class names, the training prior and the source checkpoint's sha256.
--int8 then quantises the weights to 8 bits (onnxruntime's dynamic quantisation).
"""
from pathlib import Path

from model import CheckpointError
from onnx_classifier import OnnxError, export
from utils import ArgumentParser, OutputError, check_writable_file, run_script


def get_args_parser():
    parser = ArgumentParser(description="Export a Deep-Emotion checkpoint to ONNX.")
    parser.add_argument("-m", "--model", default="weights/deep_emotion_vgg.pt",
                        help="checkpoint to export (default: weights/deep_emotion_vgg.pt)")
    parser.add_argument("--out", default="", help="the .onnx file to write (default: the checkpoint's name, .onnx, "
                                                  "in the current folder)")
    parser.add_argument("--int8", action="store_true", help="quantise the weights to 8 bits (default: off)")
    return parser


def main(args):
    out = Path(args.out or Path(args.model).with_suffix(".onnx").name)
    check_writable_file(out, "the ONNX file")
    path = export(args.model, out, args.int8)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return path


if __name__ == "__main__":
    run_script(get_args_parser, main, (CheckpointError, OutputError, OnnxError))
