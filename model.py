"""The Deep-Emotion networks, where the original repository keeps them: `from model import DeepEmotion`.

The code lives in deep_emotion/model.py; this file keeps the original repository's import working, and
the original implementation's state_dicts load into `DeepEmotion()` with strict=True.
"""
from deep_emotion.model import DeepEmotion, DeepEmotionVGG, STNAttention, build_model  # noqa: F401
