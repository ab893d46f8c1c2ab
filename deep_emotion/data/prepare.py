"""Convert FER2013 (any of its shapes) or a labelled face set into lossless 48x48 PNGs and a labels CSV per split.

    python generate_data.py --data DIR             # DIR holds the download
    python generate_data.py --synthetic --data DIR # write a small synthetic demo set first
    python generate_data.py --data ../shared/rafdb --out data/raf   # a face folder, prepared elsewhere

Recognised in DIR, in this order (torchvision's FER2013 order):
  1. fer2013.csv or fer2013.csv.gz        emotion,pixels,Usage
  2. icml_face_data.csv                   emotion, Usage, pixels (names start with a space)
  3. train.csv (+ test.csv)               Kaggle competition: emotion,pixels / pixels only
  4. train/<class>/*.jpg, test/<class>/*.jpg   image-folder mirror (Training_*, PublicTest_*, PrivateTest_*)
  5. FER2013Train/label.csv + PNGs (Valid, Test)  Microsoft's FER+ folders: label = FER+ majority
  6. basic/EmoLabel/list_patition_label.txt  RAF-DB's official layout (aligned crops; its train/test kept)
  7. labels.csv (file,label[,x,y,w,h])  or  <class>/<image>   any labelled face folder (RAF-DB's copy too)
  8. fer2013_synthetic.csv(.gz)           the synthetic demo set (same columns as 1)

Training -> train, PublicTest -> val, PrivateTest -> test. Inputs are never modified. FER+'s
fer2013new.csv beside a FER2013 CSV is joined to it by row: each face keeps its ten FER+ votes
(face_sources.py). Face folders are framed as the live pipeline frames faces (--framing), and kept at
--face_size pixels, in colour or grey (--colour): by default as the default model reads faces (150x150
colour), so that `test` gives it what the live pipeline's crop gives it; FER2013's sources are 48x48 grey and
stay so.
"""
import csv
import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from deep_emotion.data import face_sources
from deep_emotion.data.fer_csv import Faces, read_csv_faces, read_image_folder_faces
from deep_emotion.data.prepared import SPLITS, UNLABELED, DataError, split_dir
from deep_emotion.data.synthetic_faces import SYNTHETIC_CSV, write_synthetic_csv
from deep_emotion.emotions import CLASS_NAMES, DEFAULT_FACE_INPUT, IMAGE_SIZE, FaceInput
from deep_emotion.face_detectors import DetectorError, yunet_model_path
from deep_emotion.utils import (
    BOOL_FLAG,
    IMAGE_SUFFIXES,
    ArgumentParser,
    OutputError,
    check_creatable_folder,
    command_hint,
    float_in,
    int_at_least,
    write_text_atomic,
)

SHOW_BAD_ROWS = 5


def get_args_parser():
    parser = ArgumentParser(description="Convert FER2013 to per-split PNGs and labels CSVs.")
    parser.add_argument("-d", "--data", default="data", help="folder holding the FER2013 download or a labelled "
                        "face folder; output goes to DIR/prepared (default: data)")
    parser.add_argument("--out", default=None, help="write the prepared splits to OUT/prepared instead, e.g. for a "
                        "read-only source (default: --data)")
    parser.add_argument("--framing", choices=face_sources.FRAMINGS, default="auto",
                        help="how a face folder's faces are framed: detect (YuNet on a bordered copy, the pipeline's "
                             "framing), mapping (RAF-DB's measured framing), as_given (the whole image); auto = detect "
                             "when a YuNet file is given, else mapping (default: auto)")
    parser.add_argument("--detector_model", default=None,
                        help="YuNet's .onnx file for --framing detect (default: $DEEP_EMOTION_YUNET)")
    parser.add_argument("--face_size", type=int_at_least(8), default=None,
                        help="a face folder's faces are kept at this many pixels square; a network reading "
                             "another size resizes them as it loads them (default: the default model's, "
                             f"{DEFAULT_FACE_INPUT.size}; FER2013's CSVs: {IMAGE_SIZE})")
    parser.add_argument("--colour", **{**BOOL_FLAG, "default": None},
                        help="keep a face folder's faces in colour (RGB); grey networks read them grey; "
                             "--colour false keeps them grey (default: as the default model reads faces, "
                             f"{'colour' if DEFAULT_FACE_INPUT.colour else 'grey'}; FER2013's CSVs: grey)")
    parser.add_argument("--val_fraction", type=float_in(0, 1, high_open=True), default=0.1,
                        help="share of train carved out as val when the source has no PublicTest (default: 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of that val carve (default: 0)")
    parser.add_argument("--force", **BOOL_FLAG, help="rebuild splits that already exist (default: off)")
    parser.add_argument("--synthetic", **BOOL_FLAG,
                        help=f"first write the synthetic demo set DIR/{SYNTHETIC_CSV} (default: off)")
    parser.add_argument("--workers", type=int_at_least(1), default=os.cpu_count(),
                        help="processes parsing pixels and threads encoding PNGs (default: all cores)")
    return parser


# ---------------------------------------------------------------- reading sources

def find_source(data_dir):
    """Returns (kind, description) of the first FER2013 shape found in data_dir."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist")
    for name in ("fer2013.csv", "fer2013.csv.gz"):
        if (data_dir / name).is_file():
            return "fer2013", data_dir / name
    if (data_dir / "icml_face_data.csv").is_file():
        return "icml", data_dir / "icml_face_data.csv"
    if (data_dir / "train.csv").is_file():
        return "competition", data_dir / "train.csv"
    if any(face_sources.class_folders(data_dir / top) for top in ("train", "test")):
        return "image_folder", data_dir
    if any((data_dir / folder / "label.csv").is_file() for folder in face_sources.FERPLUS_FOLDERS):
        return "ferplus_folders", data_dir
    face_folder = face_sources.find_face_folder(data_dir)
    if face_folder:
        return face_folder, data_dir
    for name in (SYNTHETIC_CSV, SYNTHETIC_CSV + ".gz"):
        if (data_dir / name).is_file():
            return "synthetic", data_dir / name
    raise DataError(f"no faces found in {data_dir}: expected fer2013.csv, icml_face_data.csv, train.csv, "
                    "train/<class>/ image folders, FER2013Train/label.csv, RAF-DB's basic/, a labels.csv, "
                    "<class>/ folders; or write the synthetic demo set there: "
                    f"{command_hint('prepare', f'--synthetic --data {data_dir}')}")


def read_face_folder(kind, root, faces, framing, detector_model, face_input=FaceInput()):
    """Reads a labelled face folder (face_sources.find_face_folder's kinds), framing each face as face_input."""
    entries, faces.bad = face_sources.list_face_folder(root, kind)
    if framing == "auto":
        framing = "detect" if detector_model or os.environ.get("DEEP_EMOTION_YUNET") else "mapping"
    if framing == "detect":
        try:
            detector_model = yunet_model_path(detector_model)
        except DetectorError as error:
            raise DataError(f"--framing detect: {error}") from None
    crops, faces.missed_by_detector = face_sources.frame_faces(entries, framing, detector_model, face_input)
    faces.framing = framing
    origins = [str(Path(path).relative_to(root)) if Path(path).is_relative_to(root) else str(path)
               for path, _, _, _ in entries]
    faces.bad += [(origins[i], "missing or unreadable image") for i, crop in enumerate(crops) if crop is None]
    kept = [i for i, crop in enumerate(crops) if crop is not None]
    if kept:
        faces.extend(np.stack([crops[i] for i in kept]), [entries[i][1] for i in kept],
                     [entries[i][2] for i in kept], [origins[i] for i in kept])


FACE_FOLDERS = ("rafdb", "labels_csv", "class_folders")  # framed from larger images: any --face_size, --colour


def read_faces(kind, path, workers=1, framing="auto", detector_model=None, face_input=FaceInput()):
    """Every valid face of the source, with its label, split and origin (file:line or file)."""
    faces = Faces()
    if kind in FACE_FOLDERS:
        read_face_folder(kind, path, faces, framing, detector_model, face_input)
    elif kind == "ferplus_folders":
        face_sources.read_ferplus_folders(path, faces)
    elif kind in ("fer2013", "icml", "synthetic"):
        read_csv_faces(path, faces, workers=workers)
    elif kind == "competition":
        read_csv_faces(path, faces, split="train", workers=workers)
        test_csv = path.with_name("test.csv")
        if test_csv.is_file():
            read_csv_faces(test_csv, faces, split="unlabeled", labelled=False, workers=workers)
    else:
        read_image_folder_faces(path, faces)
    return faces


def carve_val(labels, fraction, seed):
    """Deterministic stratified choice of val rows: returns a bool mask over `labels`."""
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        chosen[rng.permutation(rows)[:int(round(len(rows) * fraction))]] = True
    return chosen


# ---------------------------------------------------------------- writing splits

def write_split(directory, images, labels, origins, workers, votes=None):
    """Writes one split atomically: built in a temporary folder, then renamed into place."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    # mkdir, not tempfile.mkdtemp: mkdtemp makes the folder 0700, unreadable to other users of the machine
    building = directory.parent / f".building-{directory.name}-{uuid.uuid4().hex[:8]}"
    building.mkdir()
    try:
        (building / "images").mkdir()
        names = [f"{i:06d}.png" for i in range(len(images))]
        chunks = [range(start, min(start + 1024, len(images))) for start in range(0, len(images), 1024)]

        # cv2 releases the GIL while encoding, so threads encode in parallel; PNG's level 0 (stored, not deflated)
        # takes a third of level 1's time, and a 48x48 face fills one 4 KB disk block either way
        def encode(rows):  # colour faces are RGB; PNG files hold BGR as OpenCV writes them
            return [cv2.imencode(".png", images[i] if images.ndim == 3 else images[i][..., ::-1],
                                 [cv2.IMWRITE_PNG_COMPRESSION, 0])[1] for i in rows]

        # encode everything, then write in this thread: a writer running beside the encoders waits for the GIL
        # at each file it opens (3 s of FER2013's 4 here), and parallel writers were slower still
        with tqdm(total=2 * len(images), desc=f"writing {directory.name}", unit="step", leave=False) as bar:
            encoded = []
            with ThreadPoolExecutor(workers) as pool:
                for pngs in pool.map(encode, chunks):
                    encoded += pngs
                    bar.update(len(pngs))
            for name, png in zip(names, encoded):
                with open(building / "images" / name, "wb") as f:
                    f.write(png)
            bar.update(len(encoded))
        with open(building / "labels.csv", "w", newline="") as f:
            writer = csv.writer(f)
            with_votes = votes is not None and (votes >= 0).any()
            writer.writerow(["file", "label", "origin"] + (["votes"] if with_votes else []))
            for i, (name, label, origin) in enumerate(zip(names, labels, origins)):
                row = [name, "" if label == UNLABELED else int(label), origin]
                if with_votes:  # FER+'s ten counts, in face_sources.VOTE_COLUMNS order; empty where none
                    row.append(" ".join(map(str, votes[i])) if votes[i][0] >= 0 else "")
                writer.writerow(row)
        if directory.exists():  # --force: swap the old split out, then remove it
            old = directory.with_name(f".old-{directory.name}")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            building.rename(directory)
            shutil.rmtree(old)
        else:
            building.rename(directory)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _clean_leftovers(prepared):
    """Removes temporary folders left by an interrupted run."""
    if prepared.is_dir():
        for leftover in list(prepared.glob(".building-*")) + list(prepared.glob(".old-*")):
            shutil.rmtree(leftover, ignore_errors=True)


FOLDER_KINDS = ("image_folder", "ferplus_folders", "rafdb", "labels_csv", "class_folders")


def source_files(kind, path):
    """The files a source is read from (what its fingerprint covers)."""
    if kind == "image_folder":
        return sorted(f for top in ("train", "test") for folder in face_sources.class_folders(Path(path) / top)
                      for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if kind in FOLDER_KINDS:
        return sorted(f for f in Path(path).rglob("*") if f.is_file() and not f.name.startswith(".")
                      and "prepared" not in f.relative_to(path).parts
                      and (f.suffix.lower() in IMAGE_SUFFIXES or f.suffix.lower() in (".csv", ".txt")))
    files = [Path(path)]
    if face_sources.ferplus_votes_file(path) is not None:
        files.append(face_sources.ferplus_votes_file(path))
    if kind == "competition" and Path(path).with_name("test.csv").is_file():
        files.append(Path(path).with_name("test.csv"))
    return files


def fingerprint(kind, path):
    """What a build is made from: the source's kind and each file's name, size and modification time.

    An image folder's thousands of files are summed up in one sha256 of that listing.
    """
    root = Path(path) if kind in FOLDER_KINDS else Path(path).parent
    listing = [[str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns] for f in source_files(kind, path)]
    if kind in FOLDER_KINDS:
        return {"kind": kind, "files": len(listing),
                "listing_sha256": hashlib.sha256(json.dumps(listing).encode()).hexdigest()}
    return {"kind": kind, "files": listing}


def stale_reason(manifest, built_from, val_fraction, seed, data_dir, framing=None, face_input=None):
    """Why an existing build no longer matches its source and flags (None when it does)."""
    if framing not in (None, "auto") and manifest.get("framing") not in (None, framing):
        return f"its faces were framed by {manifest['framing']}, not {framing}"
    if face_input is not None and manifest.get("kind") in FACE_FOLDERS:
        kept = FaceInput(**manifest.get("face_input", {}))  # older builds kept 48x48 grey faces
        if kept != face_input:
            return f"its faces are {kept.describe()}, not {face_input.describe()}"
    if manifest.get("built_from") != built_from:
        if "built_from" not in manifest:
            return "it was made by an older generate_data.py that did not record its source"
        return "the source files changed since it was built"
    if manifest["val_carved_from_train"] and (manifest["val_fraction"], manifest["seed"]) != (val_fraction, seed):
        return (f"its val was carved with --val_fraction {manifest['val_fraction']} --seed {manifest['seed']}, "
                f"not {val_fraction} and {seed}")
    missing = [s for s in manifest["splits"] if not (split_dir(data_dir, s) / "labels.csv").is_file()]
    if missing:
        return f"split(s) {', '.join(missing)} are missing"
    return None


def prepare(data_dir, val_fraction=0.1, seed=0, force=False, workers=None, out=None, framing="auto",
            detector_model=None, face_input=None):
    """Converts the faces in data_dir into OUT/prepared/<split>/ (OUT = data_dir by default); returns a summary.

    face_input: the size and colours a face folder's faces are kept in (None: DEFAULT_FACE_INPUT, as the default
    model reads them); FER2013's are 48x48 grey.

    A build whose source files, val carve or splits no longer match is rebuilt; splits the
    source does not produce are removed, so no split of an older source is ever scored.
    """
    kind, path = find_source(data_dir)
    if face_input is None:
        face_input = DEFAULT_FACE_INPUT if kind in FACE_FOLDERS else FaceInput()
    if kind not in FACE_FOLDERS and face_input != FaceInput():
        raise DataError(f"{path} holds 48x48 grey faces ({kind}); --face_size and --colour are for face folders "
                        "framed from larger images, such as RAF-DB's")
    data_dir = out or data_dir  # where the splits go from here on
    prepared = split_dir(data_dir, "")
    try:  # checked, not made: a source that fails to read leaves no empty prepared/ behind
        check_creatable_folder(prepared, "the prepared splits")
    except OutputError as error:
        raise DataError(str(error)) from None
    _clean_leftovers(prepared)
    manifest_path = prepared / "manifest.json"
    built_from = fingerprint(kind, path)
    rebuilt_because = "--force" if force else None
    if manifest_path.is_file() and not force:
        manifest = json.loads(manifest_path.read_text())
        rebuilt_because = stale_reason(manifest, built_from, val_fraction, seed, data_dir, framing, face_input)
        if rebuilt_because is None:
            manifest["skipped"] = True
            return manifest
    # the manifest goes first: a rebuild interrupted from here on is never taken for a finished one
    manifest_path.unlink(missing_ok=True)

    workers = workers or os.cpu_count()
    faces = read_faces(kind, path, workers, framing, detector_model, face_input)
    images, labels, splits, origins, votes = faces.arrays()
    if len(images) == 0:
        first = f"; first: {faces.bad[0][0]}: {faces.bad[0][1]}" if faces.bad else ""
        raise DataError(f"no valid faces in {path}{first}")
    carved = False
    if "val" not in splits and "train" in splits and val_fraction > 0:
        train_rows = np.flatnonzero(splits == "train")
        splits[train_rows[carve_val(labels[train_rows], val_fraction, seed)]] = "val"
        carved = True

    summary = {"source": str(path), "kind": kind, "synthetic": kind == "synthetic", "built_from": built_from,
               "val_carved_from_train": carved, "val_fraction": val_fraction if carved else None,
               "seed": seed if carved else None, "splits": {}, "rebuilt_because": rebuilt_because,
               "bad_rows": len(faces.bad), "first_bad_rows": [f"{o}: {r}" for o, r in faces.bad[:SHOW_BAD_ROWS]],
               "ferplus_votes": faces.votes_file or ("in the source" if kind == "ferplus_folders" else None),
               "framing": faces.framing, "missed_by_detector": faces.missed_by_detector if faces.framing else None,
               "face_input": dataclasses.asdict(face_input if kind in FACE_FOLDERS else FaceInput())}
    for split in SPLITS:
        rows = np.flatnonzero(splits == split)
        if len(rows) == 0:
            shutil.rmtree(split_dir(data_dir, split), ignore_errors=True)  # an older source's split
            continue
        write_split(split_dir(data_dir, split), images[rows], labels[rows], [origins[i] for i in rows], workers,
                    votes[rows])
        counts = np.bincount(labels[rows][labels[rows] >= 0], minlength=len(CLASS_NAMES))
        summary["splits"][split] = {"faces": int(len(rows)),
                                    "per_class": dict(zip(CLASS_NAMES, counts.tolist()))}
    # the manifest is written last: its presence says every split above is complete
    write_text_atomic(manifest_path, json.dumps(summary, indent=2))
    return summary


def print_summary(summary):
    if summary.get("skipped"):
        print(f"already prepared in {summary['source']} -> prepared/ "
              f"({', '.join(summary['splits'])}); use --force to rebuild")
        return
    tag = " [SYNTHETIC demo data, not FER2013]" if summary["synthetic"] else ""
    if summary.get("rebuilt_because") and summary["rebuilt_because"] != "--force":
        print(f"rebuilt the prepared splits: {summary['rebuilt_because']}")
    print(f"converted {summary['source']} ({summary['kind']}){tag}")
    for split, info in summary["splits"].items():
        print(f"  {split:<9} {info['faces']:>6} faces  " + " ".join(f"{k}={v}" for k, v in info["per_class"].items()))
    if summary.get("ferplus_votes"):
        print(f"  FER+ votes kept for each face (from {summary['ferplus_votes']})")
    if summary.get("framing"):
        missed = (f"; YuNet missed {summary['missed_by_detector']}, framed by the mapping instead"
                  if summary["framing"] == "detect" else "")
        print(f"  faces framed by {summary['framing']}{missed}, kept {FaceInput(**summary['face_input']).describe()}")
    if summary["val_carved_from_train"]:
        print(f"  val was carved from train: {summary['val_fraction']:.0%} per class, seed {summary['seed']}")
    if summary["bad_rows"]:
        print(f"  skipped {summary['bad_rows']} bad rows, first: " + "; ".join(summary["first_bad_rows"]))


def main(args):
    """Runs setup; returns the summary dict. Raises DataError for bad input."""
    if args.synthetic:
        Path(args.data).mkdir(parents=True, exist_ok=True)
        path = write_synthetic_csv(Path(args.data) / SYNTHETIC_CSV)
        print(f"wrote synthetic demo faces (not FER2013) to {path}")
    face_input = None
    if args.face_size is not None or args.colour is not None:  # one given: the other keeps FER2013's 48x48 grey
        face_input = FaceInput(args.face_size or IMAGE_SIZE, 3 if args.colour else 1)
    summary = prepare(args.data, args.val_fraction, args.seed, args.force, args.workers, args.out, args.framing,
                      args.detector_model, face_input)
    print_summary(summary)
    return summary
