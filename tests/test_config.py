"""config.py: a run's configuration built once (defaults, recipe, --config file, resumed run, flags), checked,
written as config.json and read back; older runs' configurations read through LEGACY_CONFIG."""
import json

import pytest
import torch
from conftest import run_args

from deep_emotion import train
from deep_emotion.config import CONFIG_KEYS, LEGACY_CONFIG, RunConfig, build_config, upgrade
from deep_emotion.recipes import RECIPES
from deep_emotion.utils import TrainingError

CPU = torch.device("cpu")


def flags(*argv):
    args = run_args(train, "--train", *argv)
    return {key: getattr(args, key) for key in CONFIG_KEYS}


def test_each_layer_overrides_the_one_before(tmp_path):
    recipe = build_config(flags("--arch", "deep_emotion_vgg"), CPU)
    assert (recipe.learning_rate, recipe.epochs, recipe.seed, recipe.data) == (0.03, 60, 0, ("data",))
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps({**recipe.to_dict(), "learning_rate": 0.01, "seed": 5}))
    from_file = build_config(flags("--config", saved, "--seed", "7"), CPU, config_file=saved)
    assert (from_file.arch, from_file.learning_rate, from_file.seed) == ("deep_emotion_vgg", 0.01, 7)


def test_the_config_is_frozen_and_round_trips_through_config_json(tmp_path):
    config = build_config(flags("--data", "a", "b", "--source_weights", "1", "2", "--precision", "auto"), CPU)
    with pytest.raises(AttributeError):
        config.seed = 3
    assert config.precision in ("fp32", "bf16")  # what ran, never "auto"
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    again = build_config(flags(), CPU, config_file=tmp_path / "config.json")
    assert again == config and isinstance(again, RunConfig)


def test_a_resumed_run_keeps_its_config_and_names_each_flag_that_differs():
    saved = build_config(flags("--seed", "3", "--epochs", "100"), CPU).to_dict()
    resumed = build_config(flags("--epochs", "150"), CPU, saved=saved, resumed_from="runs/x/last.pt")
    assert (resumed.seed, resumed.epochs, resumed.schedule_epochs) == (3, 150, 200)  # --epochs may grow
    with pytest.raises(TrainingError, match=r"runs/x/last.pt was trained otherwise: --learning_rate 0.1 \(the run "
                                            r"has 0.003\); --seed 4 \(the run has 3\)"):
        build_config(flags("--seed", "4", "-lr", "0.1"), CPU, saved=saved, resumed_from="runs/x/last.pt")


def test_an_older_runs_config_is_read_through_one_table():
    saved = build_config(flags(), CPU).to_dict()
    for key in LEGACY_CONFIG:
        saved.pop(key, None)
    saved.update(data="data/fer", quiet=True, workers=2, data_identity="abc")  # how main.py once wrote it
    del saved["schedule_epochs"]
    values = upgrade(saved)
    assert values["data"] == ["data/fer"] and values["schedule_epochs"] == saved["epochs"]
    assert not {"quiet", "workers", "data_identity"} & set(values)  # process flags and derived values dropped
    resumed = build_config(flags(), CPU, saved=saved, resumed_from="old.pt")
    assert resumed.precision == "fp32" and resumed.sharpness == 0.0  # LEGACY_CONFIG: what main.py did then
    del saved["label_smoothing"]  # neither recorded nor in the table: the user must say
    with pytest.raises(TrainingError, match="does not record --label_smoothing"):
        build_config(flags(), CPU, saved=saved, resumed_from="old.pt")


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "90", "--schedule_epochs", "60"], "runs past the 60-epoch"),
    (["--data", "a", "b", "--source_weights", "1"], "gives 1 weight"),
    (["--mixup", "0.2", "--cutmix", "1"], "choose one"),
    (["--data", "a", "a"], "names a twice"),
])
def test_values_that_do_not_fit_each_other_are_one_line_errors(argv, message):
    with pytest.raises(TrainingError, match=message):
        build_config(flags("--arch", "deep_emotion_vgg", *argv), CPU)


def test_every_recipe_key_is_a_config_field():
    for recipe in RECIPES.values():
        assert set(recipe) <= set(CONFIG_KEYS)
