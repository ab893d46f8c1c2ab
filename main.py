"""Train Deep-Emotion: the classic script over deep_emotion/train.py (`deep-emotion train` is the same).

    python main.py --setup --train --data data           # prepare, then train with the default recipe
    python main.py -s True -d data                       # the original README's setup form
    python main.py --train --data data --arch deep_emotion_vgg
    python main.py --train --resume runs/deep_emotion-0/last.pt
    torchrun --nproc_per_node 2 main.py --train --data data   # DistributedDataParallel
"""
from deep_emotion.train import get_args_parser, main
from deep_emotion.utils import run_script

if __name__ == "__main__":
    run_script(get_args_parser, main, command_style="scripts")
