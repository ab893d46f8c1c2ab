"""Test accuracy and live inference: the classic script over deep_emotion/visualize.py (`deep-emotion test`, `live`).

    python visualize.py -t True -d data -m model.pt           # the original README's test form
    python visualize.py --cam                                  # webcam 0, the default model
    python visualize.py --source clip.mp4 --no_display --output annotated.mp4 --log faces.csv
"""
from deep_emotion.utils import run_script
from deep_emotion.visualize import get_args_parser, main

if __name__ == "__main__":
    run_script(get_args_parser, main, command_style="scripts")
