"""The FER2013 dataset, where the original repository keeps its loaders: `from data_loaders import FER2013`.

The code lives in deep_emotion/data/loaders.py (prepared splits as written by generate_data.py).
"""
from deep_emotion.data.loaders import FER2013, load_split  # noqa: F401
