"""Prepare FER2013 or a labelled face set: the classic script over deep_emotion/data/prepare.py
(`deep-emotion prepare`).

    python generate_data.py --data DIR             # DIR holds fer2013.csv (or another FER2013 shape)
    python generate_data.py --synthetic --data DIR # write a small synthetic demo set first
    python generate_data.py --data RAF-DB/ --out data/raf   # a labelled face folder, prepared elsewhere
"""
from deep_emotion.data.prepare import get_args_parser, main
from deep_emotion.utils import run_script

if __name__ == "__main__":
    run_script(get_args_parser, main, command_style="scripts")
