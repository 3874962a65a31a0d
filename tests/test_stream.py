"""Streaming: chunked features and model equal the whole-recording run; partials; the byte-stream readers."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asrkit.assets import fsdd_root
from asrkit.audio import load_audio
from asrkit.decode.beam import prefix_beam_search
from asrkit.errors import InputError
from asrkit.features import make_extractor
from asrkit.models import build_model
from asrkit.models.acoustic import AcousticModel
from asrkit.stream import StreamingLogMel, StreamingRecognizer, streamable_reason
from asrkit.commands.stream import stream_decode
from asrkit.stream.sources import file_chunks, pcm_chunks

RECORDINGS = sorted((fsdd_root() / "recordings").glob("*_george_1.flac"))[:3]


@pytest.mark.parametrize("sr,cepstra", [(8000, 0), (16000, 0), (16000, 13)])
def test_streaming_log_mel_equals_the_whole_recording(sr: int, cepstra: int) -> None:
    ex = make_extractor(
        {"sample_rate": sr, "n_mels": 40, "win_ms": 25, "hop_ms": 10, "f_min": 0, "f_max": None, "cepstra": cepstra}
    )
    g = torch.Generator().manual_seed(sr)
    half = ex.mel.spectrogram.n_fft // 2
    for n in [half + 1, half + 77, 1000, 12345]:
        x = torch.randn(n, generator=g)
        ref = ex(x)
        for chunk in [1, 80, 333, n] if n < 2000 else [80, 1001, n]:  # sample by sample only where it is quick
            st = StreamingLogMel(ex)
            y = torch.cat([st.push(x[i : i + chunk]) for i in range(0, n, chunk)] + [st.finish()])
            assert y.shape == ref.shape and torch.allclose(y, ref, atol=1e-4), (n, chunk)


def _model(
    name: str,
    frontend: str,
    context: int = 0,
    cmvn: str = "global",
    head: str = "ctc",
    decode_cmvn: str | None = None,
) -> AcousticModel:
    cfg = {
        "name": name,
        "head": head,
        "pool": "mean",
        "frontend": frontend,
        "subsample": 3 if frontend == "stack" else 1,
        "hidden": 48,
        "layers": 2,
        "dropout": 0.0,
        "context": context,
        "n_feats": 40,
        "n_tokens": 12,
    }
    torch.manual_seed(0)
    m = build_model(cfg)
    feats = {
        "type": "logmel",
        "n_mels": 40,
        "win_ms": 25.0,
        "hop_ms": 10.0,
        "f_min": 0.0,
        "f_max": 4000.0,
        "cmvn": cmvn,
        "sample_rate": 8000,
    }
    symbols = ["<blank>", " ", "e", "f", "i", "n", "o", "r", "t", "u", "v", "w"]
    stats = {"mean": torch.full((40,), -6.0), "std": torch.full((40,), 3.0)}
    state = {
        "format": 1,
        "model_config": cfg,
        "tokenizer": {"kind": "char", "symbols": symbols},
        "features": feats,
        "cmvn": stats,
        "model": m.state_dict(),
    }
    if decode_cmvn:  # the trained recipe reads with another normalisation than it trains with
        state["recipe"] = {"decode": {"cmvn": decode_cmvn}}
    return AcousticModel(state, "cpu")


def _gru_checkpoint(tmp_path: Path) -> tuple[AcousticModel, Path]:
    """The seeded streamable GRU of `_model`, saved as a training checkpoint (what `decode --stream` loads)."""
    am = _model("gru", "stack")
    ckpt = tmp_path / "gru.pt"
    torch.save(
        {
            "format": 1,
            "model_config": am.config,
            "tokenizer": {"kind": "char", "symbols": am.tokenizer.symbols},
            "features": am.feature_settings,
            "cmvn": am.cmvn_stats,
            "model": am.model.state_dict(),
        },
        ckpt,
    )
    return am, ckpt


@pytest.mark.parametrize(
    "name,frontend,context",
    [("gru", "stack", 0), ("lstm", "none", 0), ("rnn", "stack", 0), ("dnn", "stack", 2), ("dnn", "none", 1)],
)
def test_every_streamable_entry_equals_offline(name: str, frontend: str, context: int) -> None:
    am = _model(name, frontend, context)
    for f in RECORDINGS[:2]:
        wav = load_audio(f, 8000)
        offline = am.log_probs([am.features(wav)])[0]
        for chunk in [800, 333]:  # 100 ms, and chunks that cut frames and front-end groups anywhere
            rec = StreamingRecognizer(am, beam=10)
            for i in range(0, len(wav), chunk):
                rec.push(wav[i : i + chunk])
            res = rec.finish()
            assert rec.log_probs.shape == offline.shape
            assert torch.allclose(rec.log_probs, offline, atol=1e-5)
            assert res.hypothesis.tokens == prefix_beam_search(offline.numpy(), 10, 0)[0].tokens
            assert res.events[-1].final and res.events[-1].text == res.hypothesis.text


def test_partials_grow_to_the_greedy_reading() -> None:
    am = _model("gru", "stack")
    wav = torch.cat([load_audio(f, 8000) for f in RECORDINGS])
    rec = StreamingRecognizer(am, beam=1)
    for i in range(0, len(wav), 800):
        rec.push(wav[i : i + 800])
    res = rec.finish()
    partials = [e for e in res.events if not e.final]
    assert partials and [e.audio_seconds for e in partials] == sorted(e.audio_seconds for e in partials)
    assert all(a.text != b.text for a, b in zip(partials, partials[1:]))  # an event only when the text changed
    assert partials[-1].text == res.hypothesis.text  # beam 1: the final reading is the greedy one
    assert len(res.word_latencies()) == len(res.hypothesis.words)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "bilstm", "frontend": "stack"}, "backwards"),
        ({"name": "gru", "frontend": "conv"}, "front-end"),
        ({"name": "gru", "frontend": "stack", "cmvn": "utterance"}, "features.cmvn: utterance"),
        ({"name": "gru", "frontend": "stack", "decode_cmvn": "prior_speech"}, "decode.cmvn: prior_speech"),
        ({"name": "gru", "frontend": "stack", "head": "classifier"}, "classifier head"),
    ],
)
def test_models_that_cannot_stream_say_why(kwargs: dict, match: str) -> None:
    am = _model(**kwargs)
    assert match in streamable_reason(am)
    if match != "classifier head":  # a model that cannot stream points at a recipe that can
        assert "recipes/digits_stream.yaml" in streamable_reason(am)
    with pytest.raises(InputError, match=match):
        StreamingRecognizer(am)


@pytest.mark.parametrize("recipe", ["digits.yaml", "digits_stream.yaml", "speech_commands.yaml", "librispeech.yaml"])
def test_models_table_says_streamable_only_where_decode_stream_accepts_the_model(recipe: str) -> None:
    from asrkit.config import load_recipe
    from asrkit.models.describe import describe_zoo

    path = Path(__file__).parents[1] / "recipes" / recipe
    r = load_recipe(path)
    rows, _ = describe_zoo(path)
    for row in rows:  # each entry built as the recipe would build it
        am = _model(row["name"], r.model.frontend, cmvn=r.features.cmvn, head=r.model.head)
        assert row["streamable"] == (streamable_reason(am) is None), (row, streamable_reason(am))
    assert any(row["streamable"] for row in rows) == (recipe == "digits_stream.yaml")


def _wav_bytes(x: np.ndarray, rate: int, width: int, channels: int = 1) -> bytes:
    scale = {1: 127, 2: 32767, 4: 2147483647}[width]
    ints = np.round(np.repeat(x[:, None], channels, 1) * scale).astype({1: np.int16, 2: np.int16, 4: np.int32}[width])
    data = (ints + 128).astype(np.uint8).tobytes() if width == 1 else ints.tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return buf.getvalue()


class _Pipe(io.RawIOBase):
    """A non-seekable byte stream, like stdin from a pipe."""

    def __init__(self, data: bytes):
        self._b = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._b.read(n)


@pytest.mark.parametrize("width,channels", [(1, 1), (2, 1), (2, 2), (4, 1)])
def test_wav_on_stdin_reads_like_the_file(width: int, channels: int) -> None:
    x = np.sin(np.linspace(0, 200, 4000)).astype(np.float32) * 0.5
    got = np.concatenate(list(pcm_chunks(_Pipe(_wav_bytes(x, 8000, width, channels)), 8000, 0.1)))
    assert len(got) == len(x) and np.allclose(got, x, atol=1.0 / {1: 100, 2: 30000, 4: 1e9}[width])


def test_raw_pcm_on_stdin_and_its_errors() -> None:
    x = (np.sin(np.linspace(0, 50, 3001)) * 20000).astype("<i2")
    chunks = list(pcm_chunks(_Pipe(x.tobytes()), 8000, 0.1))
    assert [len(c) for c in chunks][:2] == [800, 800] and np.array_equal(np.concatenate(chunks), x / 32768.0)
    with pytest.raises(InputError, match="middle of a 16-bit sample"):
        list(pcm_chunks(_Pipe(x.tobytes() + b"\x01"), 8000, 0.1))


@pytest.mark.parametrize("rate", [44100, 22050, 16000, 11025])
def test_stdin_at_another_rate_is_resampled_as_the_whole_would_be(rate: int, capsys) -> None:
    import torchaudio.functional as AF

    g = np.random.default_rng(rate)
    x = (g.standard_normal(rate * 3 // 2 + 7) * 6000).clip(-32768, 32767).astype("<i2")
    want = AF.resample(torch.from_numpy(x / 32768.0).float(), rate, 8000).numpy()
    raw = list(pcm_chunks(_Pipe(x.tobytes()), 8000, 0.1, raw_rate=rate))
    assert capsys.readouterr().err == ""  # the rate was given: no note
    wav = list(pcm_chunks(_Pipe(_wav_bytes(x / 32767.0, rate, 2)), 8000, 0.1))  # the header's rate
    for chunks in (raw, wav):
        got = np.concatenate(chunks)
        assert len(chunks) > 10 and len(got) == len(want) and np.abs(got - want).max() < 1e-4


def test_raw_pcm_without_a_rate_says_which_it_assumes(capsys) -> None:
    x = np.zeros(1600, dtype="<i2")
    assert sum(len(c) for c in pcm_chunks(_Pipe(x.tobytes()), 16000, 0.1)) == 1600
    err = capsys.readouterr().err
    assert "read as 16-bit mono at 16000 Hz" in err and "--raw-rate" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("orig,new", [(44100, 16000), (8000, 16000), (48000, 16000), (16000, 8000)])
def test_stream_resampler_equals_resampling_the_whole(orig: int, new: int) -> None:
    import torchaudio.functional as AF

    from asrkit.stream.resample import StreamResampler

    g = np.random.default_rng(orig + new)
    x = g.standard_normal(orig + 17)
    want = AF.resample(torch.from_numpy(x), orig, new).numpy()
    r = StreamResampler(orig, new, dtype=np.float64)  # float64: equal to rounding; float32 sums differ by ~1e-5
    pieces, i = [], 0
    while i < len(x):
        n = int(g.integers(1, 3000))
        pieces.append(r.push(x[i : i + n]))
        i += n
    got = np.concatenate(pieces + [r.flush()])
    assert len(got) == len(want) and np.abs(got - want).max() < 1e-12


def test_file_chunks_resample_and_downmix(tmp_path: Path) -> None:
    wav, sr = sf.read(RECORDINGS[0], dtype="float32")
    stereo = tmp_path / "s.wav"
    sf.write(stereo, np.stack([wav, wav], 1), sr)
    assert np.allclose(np.concatenate(list(file_chunks(stereo, 8000, 0.1))), wav, atol=1e-4)
    assert len(np.concatenate(list(file_chunks(stereo, 16000, 0.1)))) == 2 * len(wav)
    with pytest.raises(InputError, match="not found"):
        list(file_chunks(tmp_path / "missing.wav", 8000, 0.1))


def test_stream_decode_prints_partials_then_the_offline_final(tmp_path: Path) -> None:
    am, ckpt = _gru_checkpoint(tmp_path)
    audio = tmp_path / "in.flac"
    sf.write(audio, np.concatenate([sf.read(f, dtype="float32")[0] for f in RECORDINGS]), 8000)
    out = io.StringIO()
    res = stream_decode(ckpt, audio, {"beam": 10}, chunk_ms=100, out=out)
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("final\t") and lines[-1].split("\t")[2] == res.hypothesis.text
    assert all(line.startswith("partial\t") for line in lines[:-1])
    offline = am.log_probs([am.features(load_audio(audio, 8000))])[0]
    assert res.hypothesis.tokens == prefix_beam_search(offline.numpy(), 10, 0)[0].tokens
    assert res.rtf > 0


def test_stream_final_takes_a_lexicon_and_writes_output_and_ctm(tmp_path: Path) -> None:
    from asrkit.api import Recognizer
    from asrkit.errors import InputError as Refused

    am, ckpt = _gru_checkpoint(tmp_path)
    audio = tmp_path / "in.flac"
    sf.write(audio, np.concatenate([sf.read(f, dtype="float32")[0] for f in RECORDINGS]), 8000)
    words = tmp_path / "words.txt"
    words.write_text("one\ntwo\nfour\nnine\n")
    out, hyp, ctm = io.StringIO(), tmp_path / "out" / "hyp.txt", tmp_path / "out" / "w.ctm"
    res = stream_decode(ckpt, audio, {"beam": 10, "lexicon": words}, chunk_ms=100, out=out, output=hyp, ctm=ctm)
    offline = am.log_probs([am.features(load_audio(audio, 8000))])
    want = Recognizer(am).decode_features([], beam=10, lexicon=words, with_times=True, log_probs=offline)[0][0]
    assert res.hypothesis.text == want.text and set(want.text.split()) <= {"one", "two", "four", "nine"}
    assert out.getvalue().splitlines()[-1].split("\t")[2] == want.text
    assert hyp.read_text() == f"in\t{want.text}\n"
    rows = ctm.read_text().splitlines()
    assert [r.split()[4] for r in rows] == want.text.split() and all(r.startswith("in 1 ") for r in rows)
    with pytest.raises(Refused, match="not found"):  # a bad LM is refused before any audio is read
        stream_decode(ckpt, audio, {"lm": tmp_path / "missing.arpa"}, out=io.StringIO())


def test_ctrl_c_on_a_live_stream_still_prints_the_final_line(tmp_path: Path, monkeypatch) -> None:
    from asrkit.errors import Interrupted

    am, ckpt = _gru_checkpoint(tmp_path)
    wav = np.concatenate([sf.read(f, dtype="float32")[0] for f in RECORDINGS[:2]])

    def live(*args, **kwargs):  # a microphone: 100 ms chunks, then the user presses Ctrl-C
        yield from np.split(wav[: 800 * (len(wav) // 800)], len(wav) // 800)
        raise KeyboardInterrupt

    monkeypatch.setattr("asrkit.commands.stream.pcm_chunks", live)
    out = io.StringIO()
    with pytest.raises(Interrupted, match="Ctrl-C after"):
        stream_decode(ckpt, "-", {"beam": 10}, chunk_ms=100, out=out)
    final = out.getvalue().splitlines()[-1].split("\t")
    heard = wav[: 800 * (len(wav) // 800)]
    offline = am.log_probs([am.features(torch.from_numpy(heard))])[0]
    assert final[0] == "final" and float(final[1]) == pytest.approx(len(heard) / 8000, abs=0.01)
    assert final[2] == am.tokenizer.decode(prefix_beam_search(offline.numpy(), 10, 0)[0].tokens).strip()


def test_cli_streams_a_file_and_stdin_alike(tmp_path: Path) -> None:
    import subprocess

    from conftest import asrkit_cmd

    am, ckpt = _gru_checkpoint(tmp_path)
    wav = np.concatenate([sf.read(f, dtype="float32")[0] for f in RECORDINGS[:2]])
    audio = tmp_path / "in.wav"
    sf.write(audio, wav, 8000, subtype="PCM_16")
    pcm = sf.read(audio, dtype="int16")[0].astype("<i2").tobytes()
    cmd = [*asrkit_cmd(), "decode", "--stream", "--model", str(ckpt)]
    from_file = subprocess.run([*cmd, str(audio)], capture_output=True, text=True, timeout=300)
    from_stdin = subprocess.run([*cmd, "-"], input=pcm, capture_output=True, timeout=300)
    assert from_file.returncode == 0 and from_stdin.returncode == 0, from_file.stderr + from_stdin.stderr.decode()
    final = [line for line in from_file.stdout.splitlines() if line.startswith("final\t")]
    assert len(final) == 1 and from_stdin.stdout.decode().splitlines()[-1] == final[0]


def test_cli_stream_usage_errors_are_one_line(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "robustness"))
    from cli_inproc import assert_one_line_error, cli

    assert_one_line_error(cli("decode", "--stream", "a.wav", "b.wav"), "reads one input")
    assert_one_line_error(cli("decode", "--stream", "--vtln", "a.wav"), "--stream decodes without --submission, --vtln")
    assert_one_line_error(
        cli("decode", "--stream", "--lm", "x.arpa", "--lexicon", "w.txt", "a.wav"), "give one of them"
    )
    assert_one_line_error(cli("decode", "--stream", "--hotword", "six", "a.wav"), "give an --lm too")


def test_online_cmvn_is_causal_and_chunking_does_not_change_it() -> None:
    from asrkit.features import OnlineCMVN, normalize

    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 40, generator=g) * 3 + 5
    stats = {"mean": torch.full((40,), 4.0), "std": torch.full((40,), 2.5)}
    whole = normalize(x, "online", stats)
    st = OnlineCMVN(stats)
    chunked = torch.cat([st.push(x[i : i + 37]) for i in range(0, 500, 37)])
    assert torch.allclose(whole, chunked, atol=1e-5)
    assert torch.allclose(normalize(x[:123], "online", stats), whole[:123], atol=1e-6)  # no frame sees the future
    # the recording's own statistics take over from the prior: late frames are near zero-mean, unit-variance
    assert whole[300:].mean().abs() < 0.2 and (whole[300:].std() - 1).abs() < 0.2
    # frame 0 is normalised by the prior (weight 100 frames) and itself
    n, m = 101.0, (stats["mean"] * 100 + x[0]) / 101
    v = ((stats["std"] ** 2 + stats["mean"] ** 2) * 100 + x[0] ** 2) / n - m**2
    assert torch.allclose(whole[0], (x[0] - m) / v.sqrt(), atol=1e-5)


@pytest.mark.parametrize("name,frontend", [("gru", "stack"), ("dnn", "stack")])
def test_online_cmvn_models_stream_exactly(name: str, frontend: str) -> None:
    am = _model(name, frontend, 1 if name == "dnn" else 0, cmvn="online")
    assert streamable_reason(am) is None
    wav = load_audio(RECORDINGS[0], 8000)
    offline = am.log_probs([am.features(wav)])[0]
    rec = StreamingRecognizer(am, beam=10)
    for i in range(0, len(wav), 555):
        rec.push(wav[i : i + 555])
    rec.finish()
    assert torch.allclose(rec.log_probs, offline, atol=1e-5)
