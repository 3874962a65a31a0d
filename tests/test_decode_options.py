"""DecodeOptions: one set of decoding settings from a recipe's `decode:` section, the checkpoint's recipe, the command
line and the Python API, with one list of rules worded for each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asrkit.commands.decode import check_given, decode, option_name, resolve_options
from asrkit.config import DecodeOptions, load_recipe
from asrkit.errors import InputError


def test_one_rule_list_worded_for_each_source() -> None:
    bad = DecodeOptions(beam=0)
    with pytest.raises(InputError, match="^beam must be at least 1, got 0$"):
        bad.check()
    with pytest.raises(InputError, match="^--beam must be at least 1"):
        bad.check(option_name)
    both = DecodeOptions(lm="x.arpa", lexicon="w.txt")
    with pytest.raises(InputError, match="^--lm and --lexicon both restrict the words"):
        both.check(option_name)
    with pytest.raises(InputError, match="^--hotword boosts words in the LM beam search: give an --lm too$"):
        DecodeOptions(hotwords=["six"]).check(option_name)
    with pytest.raises(InputError, match="^--chunk-seconds must be at least 1 second"):
        DecodeOptions(chunk_seconds=float("nan")).check(option_name)
    assert DecodeOptions(lm="x.arpa", hotwords=["six"]).check() == DecodeOptions(lm="x.arpa", hotwords=["six"])


def test_a_recipe_decode_section_holds_every_setting_and_is_checked_when_it_loads(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("decode:\n  beam: 4\n  lm: lm.arpa\n  alpha: 1\n  hotwords: [six]\n  chunk_seconds: 30\n")
    d = load_recipe(recipe).decode
    assert (d.beam, d.lm, d.alpha, d.hotwords, d.chunk_seconds, d.lexicon) == (4, "lm.arpa", 1.0, ["six"], 30.0, None)
    for text, needle in [
        (
            "decode:\n  hotwords: [six]\n",
            "recipe r: decode.hotwords boosts words in the LM beam search: give an decode.lm too",
        ),
        ("decode:\n  lm: a.arpa\n  lexicon: w.txt\n", "decode.lm and decode.lexicon both restrict the words"),
        ("decode:\n  bem: 3\n", "unknown recipe key 'decode.bem'; did you mean 'decode.beam'?"),
        ("decode:\n  workers: two\n", "decode.workers: expected an integer"),
    ]:
        recipe.write_text(text)
        with pytest.raises(InputError) as e:
            load_recipe(recipe)
        assert needle in str(e.value)


def test_given_settings_win_over_the_recipe_which_wins_over_the_checkpoint(tmp_path: Path) -> None:
    stored = {"decode": {"beam": 3, "alpha": 2.0, "setting_of_a_newer_version": 1}}
    assert resolve_options({}, None, stored) == DecodeOptions(beam=3, alpha=2.0)
    assert resolve_options({"beam": 7}, None, stored) == DecodeOptions(beam=7, alpha=2.0)
    assert resolve_options({}, DecodeOptions(beta=0.5), stored) == DecodeOptions(
        beta=0.5
    )  # a recipe replaces the stored one
    assert resolve_options({}, None, None) == DecodeOptions()
    with pytest.raises(InputError, match="decode.beam: expected an integer"):
        resolve_options({}, None, {"decode": {"beam": "wide"}})
    with pytest.raises(InputError, match="--alpha and --beta weigh the LM"):
        check_given({"alpha": 0.8})
    check_given({"alpha": 0.8}, DecodeOptions(lm=str(tmp_path / "lm.arpa")))  # the recipe's LM is weighed
    with pytest.raises(InputError, match="language model .* not found"):
        check_given({"lm": tmp_path / "missing.arpa"})


def test_decode_takes_the_checkpoint_recipe_decode_section(tiny_digits_model: Path, tmp_path: Path) -> None:
    """A checkpoint whose recipe says `decode.lexicon: one word` decodes into that word only, unless told otherwise."""
    from asrkit.assets import fsdd_root

    words, other = tmp_path / "nine.txt", tmp_path / "digits.txt"
    words.write_text("nine\n")
    other.write_text("zero one two three four five six seven eight nine\n")
    state = torch.load(tiny_digits_model, weights_only=False)
    state["recipe"]["decode"] = {**state["recipe"]["decode"], "lexicon": str(words)}
    ckpt = tmp_path / "nine.pt"
    torch.save(state, ckpt)
    audio = [fsdd_root() / "recordings" / f"{d}_george_1.flac" for d in (3, 1, 4)]
    out = tmp_path / "hyp.jsonl"
    got = decode(ckpt, audio, output=out, as_json=True, quiet=True)
    assert got and all(set(h.text.split()) <= {"nine"} for h in got.values())
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == [got[a.stem].text for a in audio]
    mine = decode(ckpt, audio, {"lexicon": other}, output=out, quiet=True)
    plain = decode(tiny_digits_model, audio, {"lexicon": other}, output=out, quiet=True)
    assert {k: h.text for k, h in mine.items()} == {k: h.text for k, h in plain.items()}
    assert any(set(h.text.split()) - {"nine"} for h in mine.values())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"decode:\n  lexicon: {other}\n")
    from_recipe = decode(ckpt, audio, recipe=recipe, output=out, quiet=True)
    assert {k: h.text for k, h in from_recipe.items()} == {k: h.text for k, h in plain.items()}


def test_the_api_takes_the_options_whole_or_as_keywords(tiny_digits_model: Path) -> None:
    import asrkit
    from asrkit.assets import fsdd_root

    rec = asrkit.load(tiny_digits_model, device="cpu")
    path = fsdd_root() / "recordings" / "3_george_1.flac"
    assert rec.transcribe(path, options=DecodeOptions(beam=1)) == rec.transcribe(path, beam=1)
    nb = rec.transcribe(path, options=DecodeOptions(beam=10, nbest=3))
    assert isinstance(nb, list) and 1 <= len(nb) <= 3
    with pytest.raises(InputError, match="^beam must be at least 1, got 0"):  # a keyword wins over the options
        rec.transcribe(path, beam=0, options=DecodeOptions(beam=5))
    with pytest.raises(InputError, match="^lm and lexicon both restrict the words"):
        rec.transcribe(path, lm="x.arpa", lexicon="w.txt")
