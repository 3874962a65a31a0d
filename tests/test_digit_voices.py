"""The digits recipe's extra voices: Speech Commands digit words, TTS voices, pitch-shifted twins, VTLP,
and the held-out-speaker check that keeps a leave-one-speaker-out fold honest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asrkit.assets import fsdd_root, speech_commands_root
from asrkit.config import recipe_from_dict
from asrkit.data import tts
from asrkit.data.corpora import digits
from asrkit.data.manifest import read_manifest
from asrkit.data.prepare import prepare
from asrkit.errors import InputError
from asrkit.features import VTLP, ChannelResponse, LogMel, cepstral_smoother

from conftest import shared

ENGINE_ABSENT = "is not installed here (apt-get install espeak-ng flite festival festvox-kallpc16k)"


def _recipe(**data):
    return recipe_from_dict({"name": "digits_test", "data": data, "features": {"n_mels": 40, "f_max": 4000}})


def _need(engine: str) -> None:
    if engine not in tts.available_engines():
        pytest.skip(f"{engine} {ENGINE_ABSENT}")


# ---------------------------------------------------------------- Speech Commands digit words


def test_embedded_speech_commands_sample_follows_the_official_lists():
    root = speech_commands_root()
    recs = digits.speech_commands_recordings(_recipe(), root)
    testing = {s.strip() for s in (root / "testing_list.txt").read_text().splitlines() if s.strip()}
    validation = {s.strip() for s in (root / "validation_list.txt").read_text().splitlines() if s.strip()}
    named = lambda r: f"{digits.WORDS[r.digit]}/{r.path.name}"  # noqa: E731
    assert len(recs["train"]) + len(recs["dev"]) + len(recs["test"]) == 100
    assert {named(r) for r in recs["dev"]} == validation
    assert {named(r) for r in recs["test"]} == testing
    assert not {named(r) for r in recs["train"] + recs["dev"]} & testing  # testing-list clips are never trained on
    for r in recs["train"] + recs["dev"]:
        assert r.source == "speech_commands" and r.speaker == "sc-" + r.path.name.split("_nohash_")[0]
        assert r.path.parent.name == digits.WORDS[r.digit]
    # the official lists keep speakers apart: no training speaker is in dev
    assert not {r.speaker for r in recs["train"]} & {r.speaker for r in recs["dev"]}


def test_speech_commands_root_prefers_the_recipe_then_asrkit_data(tmp_path, monkeypatch):
    src = shared("speech_commands") / "speech_commands_v0.01"
    monkeypatch.delenv("ASRKIT_DATA", raising=False)
    assert digits.speech_commands_root(_recipe()) == speech_commands_root()
    env = tmp_path / "env"
    shutil.copytree(src, env / "speech_commands" / "speech_commands_v0.01")
    monkeypatch.setenv("ASRKIT_DATA", str(env))
    assert digits.speech_commands_root(_recipe()) == env / "speech_commands" / "speech_commands_v0.01"
    assert digits.speech_commands_root(_recipe(digits={"speech_commands_root": str(src)})) == src
    with pytest.raises(InputError, match="holds no Speech Commands corpus"):
        digits.speech_commands_root(_recipe(digits={"speech_commands_root": str(tmp_path / "nothing")}))


def test_speech_commands_training_clips_are_capped_reproducibly():
    r = _recipe(digits={"speech_commands_max": 20})
    a = digits.speech_commands_recordings(r, speech_commands_root())["train"]
    b = digits.speech_commands_recordings(r, speech_commands_root())["train"]
    assert len(a) == 20 and a == b


def test_trim_cuts_the_silence_around_a_speech_commands_word():
    from asrkit.audio import load_audio

    clip = sorted((speech_commands_root() / "seven").glob("*.wav"))[0]
    wav = load_audio(clip, 16000)
    cut = digits._trim(wav, 16000, 30.0)
    assert 0.15 * 16000 < len(cut) < len(wav)
    # what was cut is quiet: the kept part holds nearly all the energy
    assert float((cut**2).sum()) > 0.95 * float((wav**2).sum())


# ---------------------------------------------------------------- synthetic voices


def test_voice_bank_is_reproducible_distinct_and_leaves_the_held_out_variants_out():
    if not tts.available_engines():
        pytest.skip(f"no TTS engine {ENGINE_ABSENT}")
    a = tts.voice_bank(60, seed=3)
    assert a == tts.voice_bank(60, seed=3)
    assert a != tts.voice_bank(60, seed=4)
    assert len({v.key for v in a}) == len(a) <= 60
    assert not any(v.engine == "espeak-ng" and v.name.split("+")[1] in tts.HELD_OUT_VARIANTS for v in a)
    if {"espeak-ng", "flite", "festival"} <= set(tts.available_engines()):
        assert {v.engine for v in a} == {"espeak-ng", "flite", "festival"}


def test_voice_bank_notes_a_missing_engine_in_one_line(monkeypatch):
    monkeypatch.setattr(tts, "available_engines", lambda: {"flite": list(tts.FLITE_VOICES)})
    notes: list[str] = []
    bank = tts.voice_bank(20, seed=0, note=notes.append)
    assert bank and {v.engine for v in bank} == {"flite"}
    assert len(notes) == 1 and "espeak-ng, festival not installed" in notes[0] and "\n" not in notes[0]
    with pytest.raises(InputError, match="unknown TTS engine"):
        tts.voice_bank(5, seed=0, engines=["sam"])


@pytest.mark.parametrize("engine", tts.ENGINES)
def test_each_engine_renders_every_word_once(engine, tmp_path, monkeypatch):
    _need(engine)
    voice = next(v for v in tts.voice_bank(40, seed=1) if v.engine == engine)
    words = ["seven", "two"]
    folders = tts.render([voice], words, tmp_path, jobs=1)
    folder = folders[voice]
    assert folder == tmp_path / voice.key
    for w in words:
        data, sr = sf.read(folder / f"{w}.wav")
        assert sr >= 8000 and 0.2 < len(data) / sr < 3.0 and np.abs(data).max() > 0.05
    # cached: a second render runs no engine
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the engine ran again"))
    assert tts.render([voice], words, tmp_path, jobs=1) == folders


def test_voices_differ_from_each_other():
    _need("espeak-ng")
    from asrkit.features import LogMel

    bank = [v for v in tts.voice_bank(30, seed=0) if v.engine == "espeak-ng"][:2]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        folders = tts.render(bank, ["nine"], d, jobs=1)
        mel = LogMel(16000, 40, f_max=4000)
        from asrkit.audio import load_audio

        a, b = (mel(load_audio(folders[v] / "nine.wav", 16000)).mean(0) for v in bank)
    assert float((a - b).abs().mean()) > 0.1


# ---------------------------------------------------------------- augmentation


def test_pitch_shift_moves_the_pitch_and_keeps_the_duration():
    import librosa

    from asrkit.audio import load_audio

    wav = load_audio(fsdd_root() / "recordings" / "0_jackson_5.flac", 16000)
    up = digits._pitch_shifted(wav, 16000, 3.0)
    assert up.shape == wav.shape and up.dtype == torch.float32

    def f0(x: torch.Tensor) -> float:
        f, voiced, _ = librosa.pyin(x.numpy(), fmin=60, fmax=400, sr=16000, frame_length=1024)
        return float(np.nanmedian(f[voiced]))

    ratio = f0(up) / f0(wav)
    assert ratio == pytest.approx(2 ** (3 / 12), rel=0.06)


def test_vtlp_is_the_identity_at_one_and_moves_a_band_the_right_way():
    v = VTLP(0.9, 1.1, 40, 16000, 0.0, 4000.0)
    w = v.matrices(torch.tensor([1.0, 0.85, 1.15]))
    assert torch.allclose(w[0], torch.eye(40), atol=1e-6)
    assert torch.allclose(
        w.sum(-1), torch.ones(3, 40), atol=1e-5
    )  # each output band mixes input bands, weights sum to 1
    x = torch.zeros(3, 1, 40)
    x[:, 0, 20] = 1.0
    y = torch.bmm(x, w.transpose(1, 2))
    centre = (y[:, 0] * torch.arange(40)).sum(-1) / y[:, 0].sum(-1)
    assert centre[0] == pytest.approx(20.0)
    assert centre[1] < 19.5 and centre[2] > 20.5  # α < 1 lowers the formants (a longer vocal tract), α > 1 raises them
    # the top band comes from the top two bands: the piecewise-linear warp keeps the range (no band off the end)
    assert torch.allclose(w[:, -1, -2:].sum(-1), torch.ones(3), atol=1e-5)
    assert w[2, 20].argmax() < 20 < w[1, 20].argmax()


def test_vtlp_draws_a_factor_per_utterance_and_follows_the_generator():
    v = VTLP(0.8, 1.2, 40, 16000, 0.0, 4000.0)
    feats = torch.randn(1, 50, 40).expand(4, 50, 40).contiguous()
    a = v(feats, torch.Generator().manual_seed(0))
    b = v(feats, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])  # four utterances, four factors


def test_training_batches_are_warped_and_evaluation_batches_are_not():
    from asrkit.data.loader import FeatureDataset
    from asrkit.data.manifest import Utterance
    from asrkit.text import CharTokenizer

    utts = [Utterance(f"u{i}", None, 1.0, 16000, "one", "s") for i in range(3)]
    feats = {u.id: torch.randn(30 + i, 40) for i, u in enumerate(utts)}
    tok = CharTokenizer.build(["one"])
    plain = FeatureDataset(utts, feats, tok, cmvn="none")
    warped = FeatureDataset(utts, feats, tok, cmvn="none", warp=VTLP(0.85, 1.15, 40, 16000, 0.0, 4000.0))
    assert torch.equal(plain.batch([0, 1, 2]).feats, warped.padded([0, 1, 2]).feats)
    assert not torch.allclose(plain.batch([0, 1, 2]).feats, warped.batch([0, 1, 2]).feats)


def test_vtlp_is_not_part_of_the_feature_settings():
    from asrkit.features import feature_settings

    r = recipe_from_dict({"features": {"vtlp": [0.9, 1.1]}})
    assert "vtlp" not in feature_settings(r.features, 16000)  # decoding and the feature cache do not change with it
    with pytest.raises(InputError, match="features.vtlp"):
        from asrkit.config import validate

        validate(recipe_from_dict({"features": {"vtlp": [1.2, 0.9]}}))
    with pytest.raises(InputError, match="needs features.type logmel"):
        validate(recipe_from_dict({"features": {"vtlp": [0.9, 1.1], "type": "precomputed"}}))


def test_cepstral_smoothing_keeps_the_envelope_and_drops_the_pitch_harmonics():
    p = cepstral_smoother(40, 13)
    assert torch.allclose(p, p.T, atol=1e-6) and torch.allclose(p @ p, p, atol=1e-5)  # an orthogonal projection
    assert torch.linalg.matrix_rank(p) == 13
    # a 120 Hz pulse train through one resonance: harmonics every 120 Hz ride on a smooth envelope
    sr, t = 16000, torch.arange(8000) / 16000
    pulses = (torch.remainder(t * 120, 1.0) < 120 / sr).float()
    k = torch.arange(400) / sr
    wav = torch.nn.functional.conv1d(
        pulses[None, None], (torch.exp(-k * 300) * torch.sin(2 * torch.pi * 700 * k)).flip(0)[None, None], padding=399
    )[0, 0, :8000]
    raw = LogMel(sr, 40, f_max=4000)(wav)[10:-10].mean(0)
    smooth = LogMel(sr, 40, f_max=4000, cepstra=13)(wav)[10:-10].mean(0)

    def ripple(x):
        return (
            (x[:20] - torch.nn.functional.avg_pool1d(x[None, None, :20], 3, 1, 1, count_include_pad=False)[0, 0])
            .abs()
            .mean()
        )

    assert ripple(smooth) < 0.5 * ripple(raw)  # the low bands resolve single harmonics; the envelope does not
    assert int(smooth.argmax()) in range(int(raw.argmax()) - 2, int(raw.argmax()) + 3)  # the resonance stays put
    assert torch.equal(LogMel(sr, 40, cepstra=0)(wav), LogMel(sr, 40)(wav))


def test_channel_response_is_one_smooth_curve_per_utterance():
    c = ChannelResponse(0.5, 40)
    feats = torch.zeros(256, 20, 40)
    y = c(feats, torch.Generator().manual_seed(0))
    assert torch.equal(y, c(feats, torch.Generator().manual_seed(0)))
    assert torch.equal(y[:, :1].expand_as(y), y)  # the same offset in every frame of an utterance
    assert not torch.allclose(y[0, 0], y[1, 0])
    assert float(y[:, 0].std()) == pytest.approx(0.5, rel=0.15)
    d = y[:, 0, 1:] - y[:, 0, :-1]
    assert float(d.std()) < 0.3 * float(y[:, 0].std())  # neighbouring bands move together: a response, not noise


def test_channel_response_reaches_training_batches_only():
    from asrkit.config import validate
    from asrkit.data.loader import FeatureDataset
    from asrkit.data.manifest import Utterance
    from asrkit.features import feature_settings
    from asrkit.text import CharTokenizer

    utts = [Utterance(f"u{i}", None, 1.0, 16000, "one", "s") for i in range(3)]
    feats = {u.id: torch.randn(30 + i, 40) for i, u in enumerate(utts)}
    ds = FeatureDataset(utts, feats, CharTokenizer.build(["one"]), cmvn="none", channel=ChannelResponse(0.5, 40))
    assert not torch.allclose(ds.batch([0, 1]).feats, ds.padded([0, 1]).feats)
    assert "channel" not in feature_settings(recipe_from_dict({"features": {"channel": 0.5}}).features, 16000)
    with pytest.raises(InputError, match="features.channel"):
        validate(recipe_from_dict({"features": {"channel": -1}}))


# ---------------------------------------------------------------- held-out speakers


def _rec(path: Path, speaker: str, source: str = "fsdd") -> digits.Recording:
    return digits.Recording(path, 1, speaker, 0, source)


def test_check_held_out_refuses_the_speakers_name_and_the_speakers_audio(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.wav", "b.wav", "c.wav"))
    sf.write(a, np.random.default_rng(0).normal(0, 0.1, 800), 8000)
    sf.write(c, np.random.default_rng(1).normal(0, 0.1, 800), 8000)
    shutil.copy(a, b)
    digits.check_held_out([_rec(c, "jackson")], [_rec(a, "george")])  # other voice, other audio: fine
    with pytest.raises(InputError, match=r"held-out speaker\(s\) \['george'\]"):
        digits.check_held_out([_rec(c, "George", "tts")], [_rec(a, "george")])
    with pytest.raises(InputError, match="is the held-out recording"):
        digits.check_held_out([_rec(b, "sc-1234", "speech_commands")], [_rec(a, "george")])


def test_a_leave_one_speaker_out_fold_never_hears_the_held_out_speaker(tmp_path, monkeypatch):
    """Prepare a fold with every source; the held-out speaker's recordings are nowhere in train or dev, and
    a Speech Commands folder that smuggles one of them in under another name is refused."""
    monkeypatch.delenv("ASRKIT_DATA", raising=False)
    src = fsdd_root() / "recordings"
    fsdd = tmp_path / "fsdd" / "recordings"
    fsdd.mkdir(parents=True)
    for spk in ("george", "jackson", "nicolas"):
        for d in range(10):
            for i in (0, 5, 11):
                shutil.copy(src / f"{d}_{spk}_{i}.flac", fsdd)
    sc = tmp_path / "sc"
    shutil.copytree(speech_commands_root(), sc)
    data = {
        "root": str(tmp_path / "fsdd"),
        "out_dir": str(tmp_path / "data"),
        "test_speakers": ["nicolas"],
        "connected": {"per_split": {"train": 20, "dev": 4, "test": 4}},
        "digits": {
            "sources": ["fsdd", "speech_commands", "tts"],
            "speech_commands_root": str(sc),
            "pitch_shift": [-2.0, 2.0],
            "tts": {"voices": 6, "dev_voices": 1, "cache": str(tmp_path / "tts")},
        },
    }
    recipe = recipe_from_dict({"name": "fold", "data": data, "features": {"n_mels": 40, "f_max": 4000}})
    prepare(recipe, quiet=True)
    out = tmp_path / "data"
    trained = read_manifest(out / "train.jsonl") + read_manifest(out / "dev.jsonl")
    test = read_manifest(out / "test_isolated.jsonl")
    assert {u.speaker for u in test} == {"nicolas"} and len(test) == 30
    assert "nicolas" not in {u.speaker for u in trained}
    unseen = read_manifest(out / "test_unseen.jsonl")  # Speech Commands testing-list clips: voices never trained on
    assert len(unseen) == 22 and all(u.speaker.startswith("sc-") for u in unseen)
    assert not {u.speaker for u in unseen} & {u.speaker for u in trained}
    assert all(not u.id.split("_")[1] == "nicolas" for u in trained)
    speakers = {u.speaker for u in trained}
    assert {"george", "jackson"} <= speakers and any(s.startswith("sc-") for s in speakers)
    if tts.available_engines():
        assert sum(s.startswith("tts-") for s in speakers) == 6
    assert any(u.id.endswith("_v1") for u in trained)  # pitch-shifted twins of the real words
    # connected training utterances come from several sources
    con = [u for u in read_manifest(out / "train.jsonl") if u.extra.get("kind") == "connected"]
    assert len(con) == 20 and len({u.speaker.split("-")[0] for u in con}) >= 2
    # one of nicolas' recordings disguised as a Speech Commands clip: refused, naming both files
    shutil.copy(fsdd / "3_nicolas_0.flac", sc / "three" / "0badc0de_nohash_0.wav")
    recipe.data.seed = 1  # a new fingerprint, so prepare runs again
    with pytest.raises(InputError, match="3_nicolas_0.flac"):
        prepare(recipe, quiet=True)
    assert (
        json.loads((out / "prepare.json").read_text())["counts"]["test_isolated"]["utterances"] == 30
    )  # the earlier preparation is intact


def test_synthetic_rir_decays_by_60_db_at_rt60():
    from asrkit.data.noise import synthetic_rir

    rng = np.random.default_rng(0)
    rir = synthetic_rir(0.4, 16000, rng)
    assert len(rir) == 6400 and rir[0] == 1.0
    early = np.sqrt(np.mean(rir[100:900] ** 2))
    late = np.sqrt(np.mean(rir[-800:] ** 2))
    assert 20 * np.log10(early / late) > 40  # most of the 60 dB fall (the windows' centres are 0.35 s apart)


def test_reverberation_and_noise_change_training_audio_only_as_asked():
    from asrkit.audio import load_audio
    from asrkit.data.noise import reverberate, synthetic_rir

    wav = load_audio(fsdd_root() / "recordings" / "4_george_9.flac", 16000)
    wet = reverberate(wav.numpy(), synthetic_rir(0.5, 16000, np.random.default_rng(1)))
    assert wet.shape == wav.shape and np.abs(wet).max() == pytest.approx(float(wav.abs().max()), rel=1e-5)
    assert np.corrcoef(wet, wav.numpy())[0, 1] < 0.99
    clean = digits.Corruption(_recipe(), 0)
    assert clean(wav) is wav
    noisy = digits.Corruption(_recipe(digits={"noise_prob": 1.0, "noise_snr": [10.0, 10.0]}), 0)
    out = noisy(wav)
    err = (out - wav).numpy()
    snr = 10 * np.log10(np.mean(wav.numpy() ** 2) / np.mean(err**2))
    assert snr == pytest.approx(10.0, abs=0.5)


def test_endpointing_cuts_a_training_word_tight_with_the_asked_probability():
    import random

    from asrkit.audio import load_audio

    wav = load_audio(sorted((speech_commands_root() / "two").glob("*.wav"))[0], 16000)
    loose = digits._trim(wav, 16000, 30.0)
    r = _recipe(digits={"endpoint_prob": 1.0, "endpoint_db": [15.0, 15.0]})
    tight = digits._endpointed(loose, r, random.Random(0))
    assert len(tight) < len(loose) - 0.03 * 16000  # at least the 30 ms margins are gone
    assert float((tight**2).sum()) > 0.8 * float((loose**2).sum())  # and the word is still there
    never = _recipe(digits={"endpoint_prob": 0.0})
    assert digits._endpointed(loose, never, random.Random(0)) is loose
    half = _recipe(digits={"endpoint_prob": 0.5})
    rng = random.Random(1)
    cut = sum(digits._endpointed(loose, half, rng) is not loose for _ in range(200))
    assert 70 < cut < 130


def test_the_test_sets_do_not_change_with_the_training_material(tmp_path, monkeypatch):
    """Ablations compare recipes on the same test utterances: each split draws from generators of its own."""
    monkeypatch.delenv("ASRKIT_DATA", raising=False)
    src = fsdd_root() / "recordings"
    fsdd = tmp_path / "fsdd" / "recordings"
    fsdd.mkdir(parents=True)
    for spk in ("george", "jackson"):
        for d in range(10):
            for i in (0, 12, 13):
                shutil.copy(src / f"{d}_{spk}_{i}.flac", fsdd)

    def test_texts(name: str, **digits_cfg) -> list[str]:
        data = {
            "root": str(tmp_path / "fsdd"),
            "out_dir": str(tmp_path / name),
            "dev_indices": [13],
            "connected": {"per_split": {"train": 30, "dev": 3, "test": 12}},
            "digits": digits_cfg,
        }
        prepare(recipe_from_dict({"name": name, "data": data, "features": {"n_mels": 40, "f_max": 4000}}), quiet=True)
        return [u.text for u in read_manifest(tmp_path / name / "test.jsonl")]

    plain = test_texts("plain")
    assert test_texts("more", sources=["fsdd", "speech_commands"], pitch_shift=[-2.0, 2.0], mixed_voices=0.5) == plain
    assert test_texts("again") == plain


def test_an_unwritable_tts_cache_is_one_line(tmp_path):
    _need("flite")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    voice = tts.Voice("flite", "slt", 0, 100)
    with pytest.raises(InputError, match="cannot write the TTS cache"):
        tts.render([voice], ["one"], blocker / "cache", jobs=1)


# ---------------------------------------------------------------- test-time VTLN


def test_vtln_keeps_the_warp_whose_best_path_is_surest():
    from asrkit.decode.vtln import best_path_score, vtln_log_probs, warpers

    settings = {"type": "logmel", "n_mels": 40, "sample_rate": 16000, "f_min": 0.0, "f_max": 4000.0}
    ws = dict(warpers(settings))
    assert torch.allclose(ws[1.0], torch.eye(40), atol=1e-6)

    # a "model" that is sure of itself only when the energy peak sits in band 20
    def model(feats: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for f in feats:
            centre = (f.clamp_min(0) * torch.arange(40)).sum(-1) / f.clamp_min(0).sum(-1)
            sure = 5 * torch.exp(-(centre - 20.0).abs())[:, None]  # 5 at band 20, towards 0 (a coin toss) away from it
            out.append(torch.log_softmax(torch.cat([sure * 0, sure], -1), -1))
        return out

    def peak_at(band):
        return torch.zeros(30, 40).index_fill_(1, torch.tensor([band]), 5.0)

    lps, chosen = vtln_log_probs(model, [peak_at(20), peak_at(17), peak_at(23)], settings)
    assert chosen[0] == 1.0
    assert chosen[1] > 1.0 > chosen[2]  # a low formant is warped up, a high one down
    assert best_path_score(lps[1]) > best_path_score(model([peak_at(17)])[0])
    same, _ = vtln_log_probs(model, [peak_at(17)], settings, factors=(1.0,))
    assert torch.equal(same[0], model([peak_at(17)])[0])
    with pytest.raises(InputError, match="precomputed"):
        warpers({**settings, "type": "precomputed"})
