"""asrkit.config: YAML recipes, `--set` overrides, type checks and value validation with key paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from asrkit.config import MODEL_NAMES, Recipe, load_recipe, parse_overrides, recipe_from_dict, save_recipe, validate
from asrkit.errors import InputError

ROOT = Path(__file__).resolve().parents[1]

RECIPE = """\
name: tiny
data:
  corpus: digits
  sample_rate: 8000
  dev_indices: [5, 6]
  connected:
    per_split: {train: 10, dev: 2, test: 3}
    min_words: 1
    max_words: 3
features:
  n_mels: 40
  specaugment: null
model:
  name: lstm
  hidden: 32
train:
  epochs: 2
  lr: 0.01
"""


def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_load_recipe_reads_values_and_keeps_defaults(tmp_path):
    r = load_recipe(_write(tmp_path, RECIPE))
    assert isinstance(r, Recipe)
    assert r.name == "tiny"
    assert r.data.sample_rate == 8000
    assert r.data.dev_indices == [5, 6]
    assert r.data.connected.per_split == {"train": 10, "dev": 2, "test": 3}
    assert (r.data.connected.min_words, r.data.connected.max_words) == (1, 3)
    assert r.features.n_mels == 40
    assert r.features.specaugment is None
    assert r.model.name == "lstm" and r.model.hidden == 32
    assert r.train.epochs == 2 and r.train.lr == pytest.approx(0.01)
    # untouched keys keep their defaults
    assert r.model.layers == 2
    assert r.train.optimizer == "adamw"
    assert r.decode.beam == 10
    assert r.data_dir == Path("data/tiny")
    assert r.exp_dir == Path("exp/tiny")


def test_name_defaults_to_file_stem(tmp_path):
    r = load_recipe(_write(tmp_path, "model: {hidden: 8}\n", name="my_recipe.yaml"))
    assert r.name == "my_recipe"
    assert r.model.hidden == 8


def test_int_is_accepted_for_float_and_scientific_notation_parses(tmp_path):
    # PyYAML reads `1e-3` (no dot) as a string; a float field still takes it
    r = load_recipe(_write(tmp_path, "train: {batch_seconds: 60, lr: 1e-3}\n"))
    assert r.train.batch_seconds == 60.0 and isinstance(r.train.batch_seconds, float)
    assert r.train.lr == pytest.approx(1e-3)


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(InputError) as e:
        load_recipe(_write(tmp_path, "trian:\n  epochs: 3\n"))
    msg = str(e.value)
    assert "'trian'" in msg
    assert "did you mean 'train'" in msg


def test_unknown_nested_key_has_path_and_suggestion(tmp_path):
    with pytest.raises(InputError) as e:
        load_recipe(_write(tmp_path, "data:\n  connected:\n    max_word: 3\n"))
    msg = str(e.value)
    assert "data.connected.max_word" in msg
    assert "did you mean 'data.connected.max_words'" in msg


def test_unknown_key_without_close_match_has_no_suggestion(tmp_path):
    with pytest.raises(InputError) as e:
        load_recipe(_write(tmp_path, "model:\n  zzzzzz: 1\n"))
    assert "model.zzzzzz" in str(e.value)
    assert "did you mean" not in str(e.value)


@pytest.mark.parametrize(
    ("yaml_text", "path", "expected"),
    [
        ("train: {epochs: 'three'}\n", "train.epochs", "integer"),
        ("train: {epochs: true}\n", "train.epochs", "integer"),
        ("train: {epochs: 2.5}\n", "train.epochs", "integer"),
        ("data: {dev_indices: 5}\n", "data.dev_indices", "list"),
        ("data: {dev_indices: [5, x]}\n", "data.dev_indices[1]", "integer"),
        ("data: {isolated: 'yes'}\n", "data.isolated", "true or false"),
        ("train: {lr: fast}\n", "train.lr", "number"),
        ("data: {connected: 3}\n", "data.connected", "mapping"),
        ("data: {connected: {per_split: {train: x}}}\n", "data.connected.per_split.train", "integer"),
        ("model: {name: [a, b]}\n", "model.name", "string"),
    ],
)
def test_wrong_types_name_the_key_and_expectation(tmp_path, yaml_text, path, expected):
    with pytest.raises(InputError) as e:
        load_recipe(_write(tmp_path, yaml_text))
    msg = str(e.value)
    assert msg.startswith(path + ":"), msg
    assert expected in msg


def test_overrides_apply(tmp_path):
    r = load_recipe(_write(tmp_path, RECIPE), ["train.epochs=3", "data.connected.per_split={train: 5}"])
    assert r.train.epochs == 3
    # a mapping value replaces the whole mapping
    assert r.data.connected.per_split == {"train": 5}
    # other keys of the file are kept
    assert r.data.sample_rate == 8000


def test_overrides_create_sections_and_parse_yaml_values(tmp_path):
    r = load_recipe(
        _write(tmp_path, "name: x\n"),
        ["features.specaugment.freq_masks=1", "data.test_speakers=[george]", "data.root=/some/where"],
    )
    assert r.features.specaugment is not None and r.features.specaugment.freq_masks == 1
    assert r.features.specaugment.time_masks == 2  # the rest of the section keeps defaults
    assert r.data.test_speakers == ["george"]
    assert r.data.root == "/some/where"


def test_override_of_unknown_key_is_an_error(tmp_path):
    with pytest.raises(InputError, match=r"train\.epoch'.*did you mean 'train\.epochs'"):
        load_recipe(_write(tmp_path, RECIPE), ["train.epoch=3"])


def test_override_through_a_scalar_is_an_error(tmp_path):
    with pytest.raises(InputError, match="not a section"):
        load_recipe(_write(tmp_path, RECIPE), ["train.epochs.x=3"])


def test_malformed_override_without_equals(tmp_path):
    with pytest.raises(InputError) as e:
        load_recipe(_write(tmp_path, RECIPE), ["train.epochs"])
    assert "train.epochs" in str(e.value)
    assert "key=value" in str(e.value)


def test_parse_overrides_values():
    assert parse_overrides(["a.b=3", "c=x=y", "d=", "e=[1, 2]"]) == [
        ("a.b", 3),
        ("c", "x=y"),
        ("d", None),
        ("e", [1, 2]),
    ]
    assert parse_overrides(None) == []


def test_invalid_yaml_reports_line(tmp_path):
    p = _write(tmp_path, "name: x\ndata:\n  corpus: digits\n  sample_rate: [16000\nmodel: {}\n")
    with pytest.raises(InputError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert str(p) in msg
    assert "invalid YAML" in msg
    assert "line 5" in msg


def test_top_level_must_be_mapping(tmp_path):
    with pytest.raises(InputError, match="mapping at the top level"):
        load_recipe(_write(tmp_path, "- a\n- b\n"))


def test_missing_recipe_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("features.n_mels=0", "features.n_mels"),
        ("features.n_mels=-4", "features.n_mels"),
        ("model.hidden=0", "model.hidden"),
        ("model.layers=-1", "model.layers"),
        ("model.conv_channels=0", "model.conv_channels"),
        ("train.epochs=0", "train.epochs"),
        ("train.batch_seconds=-1", "train.batch_seconds"),
        ("train.lr=0", "train.lr"),
        ("data.sample_rate=0", "data.sample_rate"),
        ("decode.beam=0", "decode.beam"),
        ("features.hop_ms=0", "hop_ms"),
        ("data.connected.per_split={train: -1}", "per_split"),
        ("data.connected.per_split={trian: 5}", "per_split"),
        ("data.connected.min_words=0", "min_words"),
        ("data.connected.gap_seconds=[0.3]", "gap_seconds"),
        ("data.connected.gap_seconds=[0.3, 0.1]", "gap_seconds"),
        ("model.subsample=5", "model.subsample"),
        ("model.dropout=1.0", "model.dropout"),
        ("data.split=random", "data.split"),
        ("data.split=speakers", "test_speakers"),
    ],
)
def test_validate_rejects_bad_values(tmp_path, override, fragment):
    with pytest.raises(InputError) as e:
        load_recipe(_write(tmp_path, RECIPE), [override])
    assert fragment in str(e.value)
    assert "recipe tiny" in str(e.value)


def test_validate_on_a_built_recipe():
    r = recipe_from_dict({"name": "v"})
    validate(r)  # defaults are valid
    r.features.n_mels = -1
    with pytest.raises(InputError, match="features.n_mels must be positive"):
        validate(r)


def test_repo_digits_recipe_loads_cleanly():
    r = load_recipe(ROOT / "recipes" / "digits.yaml")
    assert r.name == "digits"
    assert r.data.corpus == "digits"
    assert r.model.name in MODEL_NAMES
    assert r.data.dev_indices == [5, 6, 7, 8, 9]


def test_save_and_reload_round_trip(tmp_path):
    r = load_recipe(_write(tmp_path, RECIPE), ["train.epochs=4"])
    out = tmp_path / "saved" / "config.yaml"
    save_recipe(r, out)
    r2 = load_recipe(out)
    assert r2.to_dict() == r.to_dict()


@pytest.mark.parametrize("old", ["data.split=official", "data.split=speakers"])
def test_the_old_data_split_spelling_gets_one_line_that_names_its_replacement(tmp_path, old):
    with pytest.raises(InputError) as e:
        load_recipe(_write(tmp_path, RECIPE), [old])
    msg = str(e.value)
    assert "\n" not in msg and "data.split is gone" in msg and "data.test_speakers" in msg


def test_test_speakers_alone_holds_speakers_out(tmp_path):
    r = load_recipe(_write(tmp_path, RECIPE), ["data.test_speakers=[george]"])
    assert r.data.test_speakers == ["george"] and not hasattr(r.data, "split")
