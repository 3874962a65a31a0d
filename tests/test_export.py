"""Model export: ONNX and TorchScript files give PyTorch's log-probabilities, and decode like the checkpoint.

Every zoo entry is exported in both formats with random weights and compared with `AcousticModel` to 1e-4 on
real FSDD features (batches of several lengths, multiples of the subsampling and not, batch sizes 1 and > 1);
the full entry × front-end × head product runs with -m slow.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from asrkit.assets import fsdd_root  # noqa: E402
from asrkit.audio import load_audio  # noqa: E402
from asrkit.config import FeatureConfig  # noqa: E402
from asrkit.errors import AsrkitError, InputError  # noqa: E402
from asrkit.export import FORMATS, OnnxAcousticModel, TorchScriptAcousticModel, export_model, load_acoustic_model  # noqa: E402
from asrkit.commands.export import export_command  # noqa: E402
from asrkit.models.runtime import model_kind  # noqa: E402
from asrkit.features import CMVNStats, feature_settings, make_extractor  # noqa: E402
from asrkit.models import MODELS, build_model  # noqa: E402
from asrkit.models.acoustic import AcousticModel  # noqa: E402
from asrkit.models.frontend import FRONTENDS  # noqa: E402
from asrkit.text import CharTokenizer, LabelSet  # noqa: E402
from asrkit.models.checkpoint import save_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-4
SUFFIX = {"onnx": ".onnx", "torchscript": ".ts"}
RECORDINGS = fsdd_root() / "recordings"


# ---- a checkpoint like a real one: the digits recipe's features, global CMVN of real recordings ------------------


@pytest.fixture(scope="module")
def digits_fields() -> dict:
    """Everything but the weights: feature settings (global CMVN, stats from george's recordings), tokenizer, label set."""
    fcfg = yaml.safe_load((ROOT / "recipes" / "digits.yaml").read_text())["features"]
    fcfg.pop("specaugment", None)
    settings = feature_settings(FeatureConfig(**{**fcfg, "cmvn": "global"}), 8000)
    extractor = make_extractor(settings)
    stats = CMVNStats(settings["n_mels"])
    with torch.inference_mode():
        for d in range(10):
            stats.add(extractor(load_audio(RECORDINGS / f"{d}_george_20.flac", 8000)))
    words = "zero one two three four five six seven eight nine".split()
    return {
        "features": settings,
        "cmvn": stats.to_dict(),
        "chars": CharTokenizer.build(words + [" "]),
        "labels": LabelSet([str(d) for d in range(10)]),
    }


@pytest.fixture(scope="module")
def digits_feats(digits_fields: dict, tmp_path_factory: pytest.TempPathFactory) -> list[torch.Tensor]:
    """Normalised features of 6 recordings, 3 of them joined, and that cut to 60 and 61 frames (a multiple of 2, 3, 4; of none)."""
    ck = _checkpoint(
        tmp_path_factory.mktemp("feats") / "m.pt", {"name": "dnn", "frontend": "none", "subsample": 1}, digits_fields
    )
    am = AcousticModel.load(ck, "cpu")
    names = ["0_george_21", "3_jackson_30", "7_nicolas_12", "1_nicolas_40", "8_yweweler_7", "5_yweweler_33"]
    wavs = [load_audio(RECORDINGS / f"{n}.flac", 8000) for n in names]
    feats = [am.features(w) for w in wavs]
    long = am.features(torch.cat(wavs[:3]))  # three digits in a row, like the connected-digit test set
    assert len(long) > 61
    feats += [long, long[:60], long[:61]]
    assert len({len(f) for f in feats}) >= 5
    return feats


def _config(entry: dict, fields: dict) -> dict:
    """A small model config for a zoo entry (`entry` overrides name/frontend/subsample/head/...)."""
    tok = fields["labels"] if entry.get("head") == "classifier" else fields["chars"]
    base = {
        "hidden": 24,
        "layers": 2,
        "conv_channels": 6,
        "cnn_blocks": 1,
        "context": 2,
        "dropout": 0.1,
        "projection": 0,
    }
    return {**base, **entry, "n_feats": fields["features"]["n_mels"], "n_tokens": len(tok)}


def _checkpoint(path: Path, entry: dict, fields: dict) -> Path:
    """Save a random-weight zoo model with the non-model fields of a real checkpoint."""
    cfg = _config(entry, fields)
    torch.manual_seed(0)
    model = build_model(cfg)
    tok = fields["labels"] if cfg.get("head") == "classifier" else fields["chars"]
    save_checkpoint(
        path,
        {
            "model_config": cfg,
            "tokenizer": tok.to_dict(),
            "features": fields["features"],
            "cmvn": fields["cmvn"],
            "model": model.state_dict(),
        },
    )
    return path


def _outputs(am, feats: list[torch.Tensor]) -> list[torch.Tensor]:
    return am.classify(feats) if am.task == "classifier" else am.log_probs(feats)


def _max_diff(ref, exp, feats: list[torch.Tensor]) -> float:
    """Largest |PyTorch − export| over the whole batch, batch size 1 (a non-multiple length) and a sub-batch."""
    worst = 0.0
    for batch in (feats, feats[-1:], feats[1:4]):
        a, b = _outputs(ref, batch), _outputs(exp, batch)
        assert [x.shape for x in a] == [x.shape for x in b]
        worst = max(worst, max(float((x - y).abs().max()) for x, y in zip(a, b)))
    return worst


def _check_export(tmp: Path, entry: dict, fields: dict, feats: list[torch.Tensor], formats=FORMATS) -> dict[str, float]:
    ck = _checkpoint(tmp / "model.pt", entry, fields)
    ref = AcousticModel.load(ck, "cpu")
    diffs = {}
    for fmt in formats:
        exp = load_acoustic_model(export_model(ck, fmt, tmp / f"model{SUFFIX[fmt]}"))
        assert type(exp) is {"onnx": OnnxAcousticModel, "torchscript": TorchScriptAcousticModel}[fmt]
        assert (exp.task, exp.subsample, exp.frame_shift, exp.sample_rate) == (
            ref.task,
            ref.subsample,
            ref.frame_shift,
            ref.sample_rate,
        )
        diffs[fmt] = _max_diff(ref, exp, feats)
        assert diffs[fmt] <= TOL, (entry, fmt, diffs[fmt])
    return diffs


# every zoo entry with a CTC head, every front-end and subsampling, the classifier (all pools) and frame heads
DEFAULT_CASES = [
    {"name": "dnn", "frontend": "none", "subsample": 1},
    {"name": "rnn", "frontend": "stack", "subsample": 3, "nonlinearity": "relu"},
    {"name": "lstm", "frontend": "conv", "subsample": 2},
    {"name": "bilstm", "frontend": "resnet", "subsample": 4},
    {"name": "gru", "frontend": "stack", "subsample": 2},
    {"name": "bigru", "frontend": "conv", "subsample": 3, "projection": 12},
    {"name": "bigru", "frontend": "resnet", "subsample": 2, "head": "classifier", "pool": "last"},
    {"name": "bilstm", "frontend": "stack", "subsample": 3, "head": "classifier", "pool": "last", "layers": 1},
    {"name": "lstm", "frontend": "none", "subsample": 1, "head": "classifier", "pool": "attention", "layers": 1},
    {"name": "dnn", "frontend": "conv", "subsample": 4, "head": "classifier", "pool": "mean"},
    {"name": "gru", "frontend": "none", "subsample": 1, "head": "frame", "layers": 1},
    {"name": "dnn", "frontend": "stack", "subsample": 3, "head": "frame", "context": 0},
]


def _case_id(c: dict) -> str:
    return "-".join(str(c[k]) for k in ("name", "frontend", "subsample")) + f"-{c.get('head', 'ctc')}"


@pytest.mark.parametrize("entry", DEFAULT_CASES, ids=_case_id)
def test_export_equals_pytorch(entry: dict, digits_fields: dict, digits_feats: list, tmp_path: Path) -> None:
    _check_export(tmp_path, entry, digits_fields, digits_feats)


def test_default_cases_cover_the_zoo() -> None:
    ctc = {c["name"] for c in DEFAULT_CASES if c.get("head", "ctc") == "ctc"}
    assert ctc == set(MODELS)
    assert {c["frontend"] for c in DEFAULT_CASES} == set(FRONTENDS)
    assert {c.get("head", "ctc") for c in DEFAULT_CASES} == {"ctc", "classifier", "frame"}
    assert {c.get("pool") for c in DEFAULT_CASES if c.get("head") == "classifier"} == {"last", "mean", "attention"}


@pytest.mark.slow
@pytest.mark.parametrize("head", ["ctc", "classifier", "frame"])
@pytest.mark.parametrize("name", MODELS)
def test_export_equals_pytorch_full_product(
    name: str, head: str, digits_fields: dict, digits_feats: list, tmp_path: Path
) -> None:
    """Every zoo entry × front-end × head, both formats."""
    for frontend, sub in (("none", 1), ("stack", 3), ("conv", 2), ("resnet", 4)):
        entry = {
            "name": name,
            "frontend": frontend,
            "subsample": sub,
            "head": head,
            "pool": "last" if name.startswith("bi") else "mean",
        }
        _check_export(tmp_path / frontend, entry, digits_fields, digits_feats)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")  # PyTorch's reference model
@pytest.mark.parametrize("name", ["lstm", "bilstm"])
def test_projected_lstm_exports(name: str, digits_fields: dict, digits_feats: list, tmp_path: Path) -> None:
    """torch's ONNX LSTM has no proj_size: the export swaps in an equivalent scripted loop (an ONNX Loop); TorchScript traces it."""
    import onnx

    entry = {"name": name, "frontend": "stack", "subsample": 2, "projection": 12}
    _check_export(tmp_path, entry, digits_fields, digits_feats)
    assert "Loop" in {n.op_type for n in onnx.load(str(tmp_path / "model.onnx")).graph.node}


# ---- the settings travel with the file -------------------------------------------------------------------------


def test_exports_carry_the_decoding_settings(digits_fields: dict, tmp_path: Path) -> None:
    import onnx

    from asrkit import __version__

    ck = _checkpoint(
        tmp_path / "m.pt", {"name": "gru", "frontend": "stack", "subsample": 3, "layers": 1}, digits_fields
    )
    ref = AcousticModel.load(ck, "cpu")
    onnx_path = export_model(ck, "onnx", tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(props["asrkit.asrkit_version"]) == __version__
    assert json.loads(props["asrkit.export_format"]) == 1
    assert json.loads(props["asrkit.tokenizer"]) == ref.tokenizer.to_dict()
    # TorchScript under a .pt name: the loader goes by content, not by suffix
    ts_path = export_model(ck, "torchscript", tmp_path / "m_ts.pt")
    assert (model_kind(onnx_path), model_kind(ts_path), model_kind(ck)) == ("onnx", "torchscript", "checkpoint")
    for path in (onnx_path, ts_path):
        m = load_acoustic_model(path)
        assert isinstance(m, AcousticModel)  # what asrkit.api.Recognizer checks
        assert m.tokenizer.symbols == ref.tokenizer.symbols and m.tokenizer.blank == ref.tokenizer.blank
        assert m.feature_settings == ref.feature_settings and m.config == ref.config
        assert (m.task, m.subsample, m.frame_shift, m.sample_rate, m.precomputed) == (
            ref.task,
            ref.subsample,
            ref.frame_shift,
            ref.sample_rate,
            ref.precomputed,
        )
        assert torch.equal(m.cmvn_stats["mean"], ref.cmvn_stats["mean"]) and torch.equal(
            m.cmvn_stats["std"], ref.cmvn_stats["std"]
        )
        wav = RECORDINGS / "4_george_22.flac"
        assert torch.equal(m.item_features(str(wav), None), ref.item_features(str(wav), None))
    assert type(load_acoustic_model(ck)) is AcousticModel


def test_onnx_runtime_runs_no_pytorch_model(digits_fields: dict, digits_feats: list, tmp_path: Path) -> None:
    """The ONNX model holds no torch module but the feature extractor, and its forward calls no torch compute function."""
    from torch.overrides import TorchFunctionMode

    class Calls(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.names: set[str] = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.names.add(getattr(func, "__name__", str(func)))
            return func(*args, **(kwargs or {}))

    ck = _checkpoint(
        tmp_path / "m.pt", {"name": "bilstm", "frontend": "conv", "subsample": 2, "layers": 1}, digits_fields
    )
    m = load_acoustic_model(export_model(ck, "onnx", tmp_path / "m.onnx"))
    assert m.model is None
    assert [k for k, v in vars(m).items() if isinstance(v, torch.nn.Module)] == ["extractor"]
    ref = AcousticModel.load(ck, "cpu")
    compute = ("lstm", "linear", "conv", "log_softmax", "layer_norm", "matmul", "gelu")
    with Calls() as torch_path:
        ref.log_probs(digits_feats)
    assert any(w in n for n in torch_path.names for w in compute)  # the mode sees PyTorch's forward
    with Calls() as onnx_path:
        lps = m.log_probs(digits_feats)
    assert not {n for n in onnx_path.names if any(w in n for w in compute)}, onnx_path.names
    assert len(lps) == len(digits_feats)


# ---- the trained tiny digits model: same transcripts from the ONNX file ----------------------------------------


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """|a − b| ≤ TOL·(1 + |b|): a log-prob near −30 comes from a large logit gap and carries that magnitude's rounding;
    near 0, where decoding is decided, this is TOL itself."""
    return bool(((a - b).abs() <= TOL * (1 + b.abs())).all())


def _slack(frames: int, score: float) -> float:
    """How far a hypothesis score may move when each log-prob moves by TOL·(1 + |lp|): TOL·(frames + |score|) along a path."""
    return TOL * (frames + abs(score)) + 1e-4  # + the CLI's JSON scores are rounded to 4 decimals


def _same_best(ref_nbest: list[tuple], exp_best: tuple, frames: int) -> bool:
    """The export's best (key, score) against PyTorch's n-best [(key, score), ...]. Where PyTorch's best beats its
    runner-up by more than two slacks the keys must match; in a near-tie either may win, but the export's pick must
    score as well as PyTorch's best under PyTorch's log-probs. Returns whether the margin was clear."""
    (key, score), eps = ref_nbest[0], _slack(frames, ref_nbest[0][1])
    clear = len(ref_nbest) < 2 or score - ref_nbest[1][1] > 2 * eps
    if clear:
        assert exp_best[0] == key, (exp_best, ref_nbest[:2])
    ref_score = dict(reversed(ref_nbest)).get(exp_best[0])  # a repeated key keeps its best score
    assert ref_score is not None and ref_score >= score - 2 * eps, (exp_best, ref_nbest[:3])
    assert abs(exp_best[1] - ref_score) <= eps, (exp_best, ref_score)
    return clear


def test_exported_tiny_model_decodes_like_pytorch(tiny_digits_model: Path, tmp_path: Path) -> None:
    from asrkit.decode.beam import prefix_beam_search_batch

    ref = AcousticModel.load(tiny_digits_model, "cpu")
    models = {"pytorch": ref}
    for fmt in FORMATS:
        models[fmt] = load_acoustic_model(export_model(tiny_digits_model, fmt, tmp_path / f"tiny{SUFFIX[fmt]}"))
    wavs = [
        RECORDINGS / f"{d}_george_{i}.flac" for d in range(10) for i in (1, 2)
    ]  # held out: george is the test speaker
    feats = [ref.item_features(str(w), None) for w in wavs]
    lps, nbests = {}, {}
    for name, m in models.items():
        lps[name] = m.log_probs(feats)
        lengths = [len(lp) for lp in lps[name]]
        padded = torch.nn.utils.rnn.pad_sequence(lps[name], batch_first=True).numpy()
        hyps = prefix_beam_search_batch(padded, lengths, 8, m.tokenizer.blank)
        nbests[name] = [[(tuple(h.tokens), h.score) for h in hs] for hs in hyps]
    for fmt in FORMATS:
        assert all(_close(a, b) for a, b in zip(lps[fmt], lps["pytorch"])), fmt
        clear = [_same_best(r, e[0], len(lp)) for r, e, lp in zip(nbests["pytorch"], nbests[fmt], lps["pytorch"])]
        # most clips have a clear winner (measured: all 20, the closest by 4x the needed margin): the exact check is not vacuous
        assert sum(clear) >= 15, (fmt, sum(clear))
    texts = [ref.tokenizer.decode(list(nb[0][0])).strip() for nb in nbests["pytorch"]]
    assert sum(bool(t) for t in texts) >= len(wavs) // 2  # a trained model: mostly non-empty transcripts


# ---- errors: one line each ---------------------------------------------------------------------------------------


def _one_line_error(call, match: str) -> None:
    with pytest.raises(InputError, match=match) as e:
        call()
    assert "\n" not in str(e.value), str(e.value)


def test_export_errors(digits_fields: dict, tmp_path: Path) -> None:
    ck = _checkpoint(tmp_path / "m.pt", {"name": "dnn", "frontend": "none", "subsample": 1, "layers": 1}, digits_fields)
    _one_line_error(
        lambda: export_model(ck, "tflite", tmp_path / "m.tflite"),
        "unknown export format 'tflite'; choose one of: onnx, torchscript",
    )
    _one_line_error(lambda: export_model(tmp_path / "absent.pt", "onnx", tmp_path / "m.onnx"), "not found")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    _one_line_error(lambda: export_model(foreign, "onnx", tmp_path / "m.onnx"), "not an asrkit checkpoint")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    _one_line_error(lambda: export_model(text, "torchscript", tmp_path / "m.ts"), "is not a PyTorch checkpoint file")
    _one_line_error(lambda: export_model(ck, "onnx", text / "m.onnx"), "cannot write")  # parent is a file
    _one_line_error(lambda: export_model(ck, "torchscript", tmp_path), "cannot write .*directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.pt", "m.pt", "notes.txt"]  # nothing half-written


def test_load_errors(digits_fields: dict, tmp_path: Path) -> None:
    import onnx

    _one_line_error(lambda: load_acoustic_model(tmp_path / "absent.onnx"), "not found")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07not really a model")
    _one_line_error(lambda: load_acoustic_model(junk), "cannot load ONNX model")
    ck = _checkpoint(tmp_path / "m.pt", {"name": "dnn", "frontend": "none", "subsample": 1, "layers": 1}, digits_fields)
    proto = onnx.load(str(export_model(ck, "onnx", tmp_path / "m.onnx")))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    _one_line_error(lambda: load_acoustic_model(bare), "not an asrkit export")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2))
        torch.jit.save(plain, str(tmp_path / "plain.ts"))
    _one_line_error(lambda: load_acoustic_model(tmp_path / "plain.ts"), "not an asrkit export")


def test_export_command(digits_fields: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ck = _checkpoint(
        tmp_path / "m.pt", {"name": "gru", "frontend": "stack", "subsample": 2, "layers": 1}, digits_fields
    )
    out = export_command(str(ck), "onnx", str(tmp_path / "out" / "m.onnx"))
    assert out.is_file() and "wrote" in capsys.readouterr().err
    with pytest.raises(AsrkitError):
        export_command(str(ck), "pickle", str(tmp_path / "m.pkl"))


def test_cli_export_then_decode_and_the_api_read_the_onnx_file(
    tiny_digits_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`asrkit export` → `asrkit decode --model x.onnx` gives the checkpoint's transcripts; asrkit.load reads it too."""
    import sys

    import asrkit
    from asrkit.cli import main

    sys.path.insert(0, str(Path(__file__).parent / "robustness"))
    from cli_inproc import assert_one_line_error, cli

    onnx_path = tmp_path / "tiny.onnx"
    assert (
        main(["export", "--model", str(tiny_digits_model), "--format", "onnx", "-o", str(onnx_path)]) == 0
        and onnx_path.is_file()
    )
    clips = [str(p) for p in sorted((fsdd_root() / "recordings").glob("*_george_2.flac"))[:4]]
    outs = {}
    for name, model in (("pt", tiny_digits_model), ("onnx", onnx_path)):
        out = tmp_path / f"{name}.jsonl"
        assert main(["decode", "--quiet", "--json", "--model", str(model), "--output", str(out), *clips]) == 0
        outs[name] = [json.loads(line) for line in out.read_text().splitlines()]
    am = AcousticModel.load(tiny_digits_model, "cpu")
    frames = [len(lp) for lp in am.log_probs([am.item_features(c, None) for c in clips])]
    clear = []
    for pt, ox, t in zip(outs["pt"], outs["onnx"], frames):
        clear.append(_same_best([(h["text"], h["score"]) for h in pt["nbest"]], (ox["text"], ox["score"]), t))
    assert sum(clear) >= 3, clear  # measured: all 4 clear, by over 50x the needed margin
    first = next(i for i, c in enumerate(clear) if c)
    assert asrkit.load(onnx_path).transcribe(clips[first]).text == outs["pt"][first]["text"]
    assert_one_line_error(
        cli("decode", "--stream", "--model", str(onnx_path), clips[0]), "stream the training checkpoint"
    )
