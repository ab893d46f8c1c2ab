"""Export a checkpoint (STN included) to ONNX, for onnxruntime and anything else that reads ONNX.

    deep-emotion export --model weights/deep_emotion_vgg.pt --out deep_emotion_vgg.onnx
    deep-emotion export --model deep_emotion/weights/deep_emotion.pt --out deep_emotion_int8.onnx --int8
    deep-emotion export --web                   # the browser page's files, into the checkout's web/models/

The graph's input is `faces`, float32 in 0..255 as the network reads them: (batch, 48, 48) greyscale for
most, (batch, S, S, 3) RGB for a colour network (its face_input), with a dynamic batch dimension; its
output is `probabilities` (batch, 7). The checkpoint's input normalisation and calibration temperature
are inside the graph, and its metadata records them with the class names, the training prior and the
source checkpoint's sha256.
--int8 then quantises the weights to 8 bits (onnxruntime's dynamic quantisation).

--web writes what web/index.html loads into web/models/ (git-ignored; default_web_dir): the --model classifier,
the paper's network (--paper_model) beside it, a copy of YuNet whose input size is left open
(OpenCV reshapes YuNet to each frame; onnxruntime-web needs the file to say it may), and
models.json naming them.
"""
import json
from pathlib import Path

from deep_emotion.face_detectors import yunet_model_path
from deep_emotion.inference import load_checkpoint
from deep_emotion.model import face_input_of
from deep_emotion.onnx_export import export
from deep_emotion.recognizer import DEFAULT_MODEL, LIGHT_MODEL, PAPER_MODEL, LiveSettings, pipeline_settings
from deep_emotion.serve import PAGE_FILES
from deep_emotion.utils import (
    ArgumentParser,
    check_writable_file,
    check_writable_folder,
    write_text_atomic,
)


def default_web_dir(cwd=None):
    """Where --web writes without --web_dir: the web/models/ of the checkout the current folder is in (the page's
    files, web/index.html and web/pipeline.js, beside it), else web/models/ under the current folder.

    Never the installed package's folder: after `pip install .` that is site-packages, which no page serves.
    """
    cwd = Path(cwd or Path.cwd()).resolve()
    for folder in [cwd, *cwd.parents]:
        if (folder / "web" / "index.html").is_file() and (folder / "web" / "pipeline.js").is_file():
            return folder / "web" / "models"
    return cwd / "web" / "models"


def get_args_parser():
    parser = ArgumentParser(description="Export a Deep-Emotion checkpoint to ONNX.")
    parser.add_argument("-m", "--model", default=None,
                        help="checkpoint to export; with --web, the page's default classifier (default: "
                             "deep_emotion/weights/deep_emotion_pair.pt; with --web, the light twin "
                             "deep_emotion/weights/deep_emotion_light.pt)")
    parser.add_argument("--out", default="", help="the .onnx file to write (default: the checkpoint's name, .onnx, "
                                                  "in the current folder)")
    parser.add_argument("--int8", action="store_true", help="quantise the weights to 8 bits (default: off)")
    parser.add_argument("--web", action="store_true",
                        help="write the browser page's models into --web_dir instead (default: off)")
    parser.add_argument("--web_dir", default=None,
                        help="where --web writes (default: web/models of the checkout the current folder is in, "
                             "else web/models under the current folder)")
    parser.add_argument("--full_model", default=str(DEFAULT_MODEL),
                        help="with --web, the full default model, offered as ?model=full (default: "
                             "deep_emotion/weights/deep_emotion_pair.pt; '' = none)")
    parser.add_argument("--paper_model", default=str(PAPER_MODEL),
                        help="with --web, the paper's network, offered as ?model=paper (default: "
                             "deep_emotion/weights/deep_emotion.pt; '' = none)")
    parser.add_argument("--detector_model", default=None,
                        help="with --web, YuNet's face_detection_yunet_2023mar.onnx (default: $DEEP_EMOTION_YUNET)")
    return parser


def open_input_size(yunet_path, out_path):
    """Writes a copy of YuNet whose input height and width (and so its outputs' anchor counts) are symbolic."""
    import onnx
    graph = onnx.load(yunet_path)
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in graph.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del graph.graph.value_info[:]  # shapes inferred for 640x640; onnxruntime infers them again per input
    check_writable_file(out_path, "the YuNet copy")
    onnx.save(graph, out_path)
    return Path(out_path)


def export_web(models, detector_model, web_dir):
    """The page's files in web_dir: classifiers, YuNet and models.json; returns the manifest dict.

    models: {name the page's ?model= takes: checkpoint path, or '' to leave it out}; "default" is the
    one the page runs without ?model=.
    """
    detector = yunet_model_path(detector_model, "--web (the page finds faces with YuNet)")  # one line when missing
    web_dir = check_writable_folder(Path(web_dir), "the browser page's models")
    classifiers = {}
    for key, path in models.items():
        if not path:
            continue
        checkpoint = load_checkpoint(path)
        export(path, web_dir / f"{key}.onnx")
        face_input = face_input_of(checkpoint.get("arch_args", {}))  # the page crops each face as the network reads
        classifiers[key] = {"file": f"{key}.onnx", "name": Path(path).stem, "arch": checkpoint["arch"],
                            "class_names": list(checkpoint.get("class_names")),
                            "input": {"size": face_input.size, "channels": face_input.channels}}
    open_input_size(detector, web_dir / "yunet.onnx")
    # the page searches and classifies as visualize.py does: one search in DETECT_EVERY frames, each face
    # classified on one of its frames in CLASSIFY_EVERY, with the pipeline's own constants
    live = LiveSettings()  # the page reads video as the live pipeline does by default
    manifest = {"detector": "yunet.onnx", "classifiers": classifiers, "detect_every": live.detect_every,
                "classify_every": live.classify_every, "pipeline": pipeline_settings()}
    write_text_atomic(web_dir / "models.json", json.dumps(manifest, indent=2))
    return manifest


def main(args):
    if args.web:
        models = {"default": args.model or str(LIGHT_MODEL), "full": args.full_model, "paper": args.paper_model}
        web_dir = Path(args.web_dir) if args.web_dir else default_web_dir()
        manifest = export_web(models, args.detector_model, web_dir)
        page = web_dir.parent if all((web_dir.parent / name).is_file() for name in PAGE_FILES) else None
        serve = ("serve the page with `deep-emotion serve`" if page else
                 "the page's files come with the repository's web/: copy these into its web/models/ and run "
                 "`deep-emotion serve` in the clone")
        print(f"wrote {', '.join(c['file'] for c in manifest['classifiers'].values())}, yunet.onnx and models.json "
              f"to {web_dir}; {serve}")
        return web_dir
    model = args.model or str(DEFAULT_MODEL)
    out = Path(args.out or Path(model).with_suffix(".onnx").name)
    check_writable_file(out, "the ONNX file")
    path = export(model, out, args.int8)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return path
