"""`python -m deep_emotion <command>`: the same as the `deep-emotion` command."""
from deep_emotion.cli import main

if __name__ == "__main__":
    main()
