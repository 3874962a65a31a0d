"""Recipe schema (dataclasses), YAML loading, `--set a.b=c` overrides, validation with key paths."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text


@dataclass
class ConnectedConfig:
    """Connected-digit utterances built by joining isolated recordings."""

    per_split: dict[str, int] = field(default_factory=lambda: {"train": 3000, "dev": 200, "test": 400})
    min_words: int = 2
    max_words: int = 7
    gap_seconds: list[float] = field(default_factory=lambda: [0.05, 0.3])


@dataclass
class TTSConfig:
    """Synthetic voices for the digits corpus (asrkit.data.tts)."""

    voices: int = 150  # voices drawn from the installed engines (reproducible by data.seed)
    dev_voices: int = 10  # of those, voices kept for dev (unseen-voice model selection), never trained on
    engines: list[str] = field(default_factory=lambda: ["espeak-ng", "flite", "festival"])
    cache: str | None = None  # rendered words, shared between preparations; default: <data dir>/tts-cache


@dataclass
class DigitsConfig:
    """Where the digits corpus takes its voices from, and the speaker-changing augmentation of its training words."""

    sources: list[str] = field(default_factory=lambda: ["fsdd"])  # fsdd | speech_commands | tts | an4
    speech_commands_root: str | None = None  # else $ASRKIT_DATA/speech_commands, else the embedded digit-word sample
    speech_commands_max: int = (
        6000  # at most this many Speech Commands training clips (a full corpus has ~38,000 digits)
    )
    an4_root: str | None = (
        None  # CMU AN4 (its digit-only utterances), else $ASRKIT_DATA/an4; skipped with a note when absent
    )
    an4_copies: int = 2  # AN4 utterances as audio: each read this many times, at different made-up pitches
    tts: TTSConfig = field(default_factory=TTSConfig)
    # share of training connected utterances spoken by each source's voices (the sources present; renormalised)
    connected_mix: dict[str, float] = field(default_factory=lambda: {"fsdd": 0.5, "speech_commands": 0.2, "tts": 0.3})
    # share of training connected utterances whose every word comes from a random voice: a model that cannot lean on
    # one voice for the whole utterance decides each word on its own (unseen voices are then not a context it never had)
    mixed_voices: float = 0.0
    pitch_shift: list[float] = field(
        default_factory=list
    )  # [low, high] semitones: pitch-shifted copies of each real training word (librosa)
    pitch_copies: int = 1  # how many shifted copies of each real (fsdd, speech_commands) training word
    # training words cut tight at a random level below their peak ([low, high] dB, no margin), with this probability:
    # recordings come endpointed anywhere from loose to clipping the word's weak ending
    endpoint_prob: float = 0.0
    endpoint_db: list[float] = field(default_factory=lambda: [15.0, 30.0])
    noise_prob: float = (
        0.0  # training utterances mixed with noise (Speech Commands' _background_noise_, else white/pink)
    )
    noise_snr: list[float] = field(default_factory=lambda: [10.0, 40.0])  # [low, high] dB
    reverb_prob: float = 0.0  # training utterances convolved with a synthetic room impulse response
    reverb_rt60: list[float] = field(default_factory=lambda: [0.1, 0.5])  # [low, high] seconds
    trim_db: float = (
        30.0  # speech_commands and tts words: leading/trailing audio this far below the peak is cut (librosa)
    )


@dataclass
class SpeechCommandsConfig:
    """Speech Commands: class set, clip length and the augmented copies made at prepare time."""

    classes: list[str] = field(
        default_factory=lambda: ["all"]
    )  # ["all"] | ["12"] (10 words + _silence_ + _unknown_) | words
    clip_seconds: float = 1.0
    silence_fraction: float = 0.1  # "12": _silence_ clips cut from the background noise, as a fraction of the split
    unknown_fraction: float = 0.1  # "12": other words kept as _unknown_, as a fraction of the split
    augment_copies: int = 1  # noisy/shifted copies of each training clip (Kaldi-style augmented data, made once)
    noise_prob: float = 0.8
    noise_snr: list[float] = field(default_factory=lambda: [5.0, 20.0])
    shift_ms: float = 100.0
    version: str = "v0.02"  # which archive `prepare --download` fetches: v0.01 | v0.02 (both are read alike)


@dataclass
class PhonemesConfig:
    """Phoneme recognition: which layout is read and how speakers are held out."""

    layout: str = "hw3p2"  # hw3p2 (<split>/mfcc/*.npy + transcript/*.npy) | an4 (Sphinx .mfc + transcription + .dic)
    dev_speakers: list[str] = field(default_factory=list)  # an4: speakers held out as dev
    test_speakers: list[str] = field(default_factory=list)  # an4: speakers held out as test
    lexicon: str | None = None  # CMUdict file for targets derived from transcripts


@dataclass
class EchoConfig:
    """The GRU echo memory task: letters in, the same letters `delay` steps later out."""

    delay: int = 3
    variable: bool = False  # per-sequence delay in [0, max_delay], given as an extra input
    max_delay: int = 8
    length: int = 40
    per_split: dict[str, int] = field(default_factory=lambda: {"train": 8000, "dev": 500, "test": 1000})


@dataclass
class DataConfig:
    corpus: str = "digits"
    root: str | None = None
    out_dir: str | None = None
    sample_rate: int = 16000
    targets: str = "auto"  # auto (chars for CTC, labels for a classifier, frames for a frame head) | chars | phonemes | labels | frames
    splits: dict[str, list[str]] = field(
        default_factory=dict
    )  # manifest name → corpus subsets (e.g. librispeech folders)
    alphabet: str | None = (
        None  # chars targets: the fixed character set (space added); default: the training texts' characters
    )
    oov: str = "error"  # chars targets, a train/dev character outside the vocabulary: error | drop (the utterance) | map (é→e, else drop)
    test_speakers: list[str] = field(
        default_factory=list
    )  # digits: their recordings are the test set (none: indices 0-4)
    dev_indices: list[int] = field(default_factory=lambda: [5, 6, 7, 8, 9])
    connected: ConnectedConfig = field(default_factory=ConnectedConfig)
    isolated: bool = True
    speed_perturb: list[float] = field(default_factory=list)
    max_duration: float = 30.0
    seed: int = 0
    speech_commands: SpeechCommandsConfig = field(default_factory=SpeechCommandsConfig)
    digits: DigitsConfig = field(default_factory=DigitsConfig)
    phonemes: PhonemesConfig = field(default_factory=PhonemesConfig)
    echo: EchoConfig = field(default_factory=EchoConfig)


@dataclass
class SpecAugmentConfig:
    freq_masks: int = 2
    freq_width: int = 10
    time_masks: int = 2
    time_width: float = 0.05


@dataclass
class FeatureConfig:
    type: str = "logmel"  # logmel (from audio) | precomputed (the corpus gives the frames: .npy, Sphinx .mfc, one-hot)
    n_mels: int = 80  # logmel: mel bands; precomputed: the feature dimension
    win_ms: float = 25.0
    hop_ms: float = 10.0
    f_min: float = 0.0
    f_max: float | None = None
    cepstra: int = 0  # logmel: keep only the envelope's first N cepstral coefficients (13 = MFCC's), 0 = all
    cmvn: str = "utterance"
    vtlp: list[float] = field(
        default_factory=list
    )  # [low, high]: training batches' mel axis warped by a random factor per utterance
    channel: float = (
        0.0  # training batches: a random smooth response (microphone, room) added per utterance, this std per band
    )
    specaugment: SpecAugmentConfig | None = field(default_factory=SpecAugmentConfig)


@dataclass(frozen=True)
class ZooEntry:
    """One zoo name: what it builds (`cell` None = the frame-wise DNN) and a one-line description."""

    cell: str | None
    bidirectional: bool
    description: str


# the model zoo, the one list of model names: `model.name` is checked against it, asrkit.models builds from it
ZOO: dict[str, ZooEntry] = {
    "dnn": ZooEntry(None, False, "frame-wise MLP over ±context spliced frames (hybrid-style DNN)"),
    "rnn": ZooEntry("rnn", False, "unidirectional Elman RNN (tanh or relu)"),
    "lstm": ZooEntry("lstm", False, "unidirectional LSTM, optional native projection"),
    "bilstm": ZooEntry("lstm", True, "bidirectional LSTM, optional native projection"),
    "gru": ZooEntry("gru", False, "unidirectional GRU, optional per-layer projection"),
    "bigru": ZooEntry("gru", True, "bidirectional GRU (DeepSpeech2-style with the resnet front-end)"),
}
MODEL_NAMES = tuple(ZOO)


@dataclass
class ModelConfig:
    """A zoo entry and its sizes; `asrkit models RECIPE` lists the zoo with parameter counts."""

    name: str = "bilstm"  # a ZOO name
    head: str = "ctc"  # ctc | classifier | frame
    pool: str = "mean"  # classifier head: last | mean | attention
    frontend: str = "conv"  # none | stack | conv | resnet
    conv_channels: int = 32
    cnn_blocks: int = 2  # resnet front-end: residual blocks after the strided conv
    subsample: int = 2
    hidden: int = 192
    layers: int = 2
    dropout: float = 0.1
    projection: int = 0  # > 0: project each recurrent layer's output to this size
    nonlinearity: str = "tanh"  # rnn: tanh | relu
    context: int = 0  # dnn: splice this many frames on each side


@dataclass
class TrainConfig:
    exp_dir: str | None = None
    epochs: int = 10
    batch_seconds: float = 120.0
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-2
    schedule: str = "onecycle"
    warmup: float = 0.1
    clip: float = 5.0
    accum_steps: int = 1  # gradient accumulation: batches per optimizer step
    precision: str = "fp32"  # fp32 | bf16 | fp16 mixed precision: CUDA; bf16 also on CPUs with native bf16 (else fp32)
    plateau_factor: float = 0.5  # schedule plateau: lr factor when the dev metric stalls
    plateau_patience: int = 1  # schedule plateau: epochs without improvement before lowering lr
    early_stop: int = 0  # stop after this many epochs without dev improvement; 0 = never
    metric: str = "auto"  # dev metric for best/early stopping: auto | wer | cer | loss | accuracy
    save_every: int = 100  # write last.pt every N optimizer steps (and at each epoch end); 0 = epoch ends only
    keep_best: int = 3  # keep the N best epoch checkpoints in checkpoints/
    average: int = 0  # at the end, average the N best checkpoints into averaged.pt; 0 = no
    sortagrad: bool = True
    consistency: float = (
        0.0  # CTC: two augmented views of each batch, and this weight on the divergence of their posteriors (CR-CTC)
    )
    seed: int = 0
    threads: int = 0


CMVN_MODES = ("none", "utterance", "prior", "prior_level", "prior_speech", "global", "global_level", "online")


@dataclass
class DecodeOptions:
    """How to decode: the recipe's `decode:` section, `asrkit decode`'s options and the Python API's keywords alike.

    It lives with the recipe schema so that a recipe's `decode:` section is type-checked and validated when the recipe
    loads; `asrkit.decode.search.Decoder` runs it. A new setting is a field here (with its check in `checks`) and an
    option of `asrkit decode`.
    """

    beam: int = 10  # beam width; 1 is greedy (a lexicon searches with at least 2)
    lm: str | None = None  # word n-gram (ARPA or KenLM binary) fused into the beam search
    alpha: float = 0.5  # LM weight
    beta: float = 1.0  # word insertion bonus (with an LM)
    lexicon: str | None = None  # a word list or manifest whose words constrain the search (from Python also a Lexicon)
    hotwords: list[str] = field(default_factory=list)  # words favoured in the LM search
    hotword_weight: float = 10.0
    nbest: int = 1  # hypotheses per input returned by the Python API
    chunk_seconds: float = 20.0  # longer inputs run through the model in overlapping windows of this length
    vtln: bool = False  # read each input under its most probable frequency warp
    cmvn: str | None = None  # how inputs are normalised (a features.cmvn mode); None: as the model was trained
    workers: int = 0  # processes for the LM beam search (0: in this process)

    def checks(self, name: Callable[[str], str] = str) -> list[tuple[bool, str]]:
        """(holds, message) per rule; `name` spells a setting the way its source does (`beam`, `decode.beam`, `--beam`)."""
        n = name
        return [
            (self.beam >= 1, f"{n('beam')} must be at least 1, got {self.beam}"),
            (self.chunk_seconds >= 1.0, f"{n('chunk_seconds')} must be at least 1 second, got {self.chunk_seconds}"),
            (self.workers >= 0, f"{n('workers')} must be at least 0, got {self.workers}"),
            (
                self.cmvn is None or self.cmvn in CMVN_MODES,
                f"{n('cmvn')} must be one of {', '.join(CMVN_MODES)}, got {self.cmvn}",
            ),
            (
                self.lm is None or self.lexicon is None,
                f"{n('lm')} and {n('lexicon')} both restrict the words: give one of them",
            ),
            (
                not self.hotwords or self.lm is not None,
                f"{n('hotwords')} boosts words in the LM beam search: give an {n('lm')} too",
            ),
        ]

    def check(self, name: Callable[[str], str] = str) -> DecodeOptions:
        """These options, or an InputError with the first rule they break."""
        for ok, msg in self.checks(name):
            if not ok:
                raise InputError(msg)
        return self

    def override(self, **given: Any) -> DecodeOptions:
        """These options with the settings in `given` in place of theirs; a None value is a setting not given."""
        return dataclasses.replace(self, **{k: v for k, v in given.items() if v is not None})

    @classmethod
    def from_dict(cls, values: dict | None) -> DecodeOptions:
        """Options from a stored recipe's `decode:` mapping (a checkpoint's); settings this version does not know are
        left out, the others type-checked as a recipe's."""
        names = {f.name for f in dataclasses.fields(cls)}
        return _build(cls, {k: v for k, v in (values or {}).items() if k in names}, "decode")


@dataclass
class Recipe:
    name: str = "recipe"
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeOptions = field(default_factory=DecodeOptions)

    @property
    def data_dir(self) -> Path:
        return Path(self.data.out_dir or f"data/{self.name}")

    @property
    def exp_dir(self) -> Path:
        return Path(self.train.exp_dir or f"exp/{self.name}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


TARGETS = ("auto", "chars", "phonemes", "labels", "frames")


def resolve_targets(r: Recipe) -> str:
    """What the model learns: `data.targets`, or by head when `auto`."""
    if r.data.targets != "auto":
        return r.data.targets
    return {"classifier": "labels", "frame": "frames"}.get(r.model.head, "chars")


SCHEDULES = ("onecycle", "cosine", "plateau", "constant")

_SCI_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check `value` against the annotation `tp`, converting where lossless (int → float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, path)
            except InputError as e:
                errors.append(str(e))
        raise InputError(errors[0] if errors else f"{path}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise InputError(f"{path}: expected a mapping, got {value!r}")
        return _build(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise InputError(f"{path}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{path}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp)
        return {_convert(k, kt, path): _convert(v, vt, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str) and _SCI_NUMBER.match(value.strip()):
            # YAML 1.1 (PyYAML) reads `1e-3` (no dot) as a string; it is plainly a number here
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise InputError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            hint = (
                " (YAML reads unquoted yes/no/on/off as true/false: quote the word, e.g. 'yes')"
                if isinstance(value, bool)
                else ""
            )
            raise InputError(f"{path}: expected a string, got {value!r}{hint}")
        return str(value)
    raise InputError(f"{path}: unsupported type {_type_name(tp)}")


def _build(cls: type, values: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {(prefix + '.' if prefix else '') + close[0]!r}?" if close else ""
            raise InputError(f"unknown recipe key {path!r}{hint}")
        kwargs[key] = _convert(value, hints[key], path)
    return cls(**kwargs)


def _set_path(d: dict, dotted: str, value: Any) -> None:
    """Set `a.b.c` in nested dicts; a part that the recipe schema says is a value, not a section, is refused."""
    keys = dotted.split(".")
    cls: Any = Recipe
    for k in keys[:-1]:
        if cls is not None and k in (hints := typing.get_type_hints(cls)):
            tp = hints[k]
            cls = next((a for a in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(a)), None)
            if cls is None and typing.get_origin(tp) is not dict:
                raise InputError(f"--set {dotted}: {k!r} is not a section")
        else:
            cls = None  # unknown keys are reported (with a suggestion) when the recipe is built
        nxt = d.get(k)
        if nxt is None:
            nxt = d[k] = {}
        if not isinstance(nxt, dict):
            raise InputError(f"--set {dotted}: {k!r} is not a section")
        d = nxt
    d[keys[-1]] = value


def parse_overrides(overrides: list[str] | None) -> list[tuple[str, Any]]:
    """`a.b=c` strings → (path, YAML-parsed value) pairs."""
    out = []
    for o in overrides or []:
        if "=" not in o:
            raise InputError(f"--set {o!r}: expected key=value, e.g. train.epochs=5")
        k, v = o.split("=", 1)
        k = k.strip()
        if not all(part.strip() for part in k.split(".")):
            raise InputError(f"--set {o!r}: the key {k!r} has an empty part; expected key=value, e.g. train.epochs=5")
        try:
            out.append((k, yaml.safe_load(v) if v else None))
        except (
            yaml.YAMLError,
            ValueError,
            TypeError,
            OverflowError,
        ):  # not YAML (or a bad YAML date): the literal text
            out.append((k, v))
    return out


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe YAML, apply `--set` overrides and validate every key and type."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"recipe {p} is a directory; give a YAML file, e.g. recipes/digits.yaml")
    if not p.is_file():
        raise InputError(f"recipe {p} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"recipe {p} is not UTF-8 text; a recipe is a YAML file like recipes/digits.yaml") from None
    raw = parse_recipe_text(text, str(p))
    if raw is None:
        raise InputError(f"recipe {p} is empty; start from one of recipes/*.yaml (at least data.corpus)")
    if not isinstance(raw, dict):
        raise InputError(
            f"recipe {p}: expected a mapping at the top level (key: value lines), got a {type(raw).__name__}"
        )
    raw.setdefault("name", p.stem)
    for k, v in parse_overrides(overrides):
        _set_path(raw, k, v)
    recipe = recipe_from_dict(raw)
    validate(recipe)
    return recipe


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise InputError(
                    f"recipe {self.name} line {line}: key {key!r} is given twice (first on line {seen[key]}); keep one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


def parse_recipe_text(text: str, where: str) -> Any:
    """YAML text → Python data; a syntax error, a duplicate key (or a value YAML cannot build) raises InputError with the line."""
    loader = None
    try:
        loader = _RecipeLoader(text)  # the reader checks the characters here already
        loader.name = where
        return loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"recipe {where}{line}: invalid YAML ({problem})") from None
    except (
        ValueError,
        TypeError,
        OverflowError,
        RecursionError,
    ) as e:  # e.g. a date like 2024-13-45 that YAML reads as a timestamp
        raise InputError(f"recipe {where}: a value YAML cannot read ({type(e).__name__}: {e}); quote it") from None
    finally:
        if loader is not None:
            loader.dispose()


def recipe_from_dict(raw: dict) -> Recipe:
    """Build and type-check a Recipe from nested dicts (unknown keys, wrong types → InputError with the key path)."""
    if not isinstance(raw, dict):
        raise InputError(f"recipe: expected a mapping at the top level, got {type(raw).__name__}")
    if (
        isinstance(raw.get("data"), dict) and "split" in raw["data"]
    ):  # the spelling before data.test_speakers decided alone
        raise InputError(
            f"recipe {raw.get('name')}: data.split is gone: data.test_speakers names the held-out test speakers "
            "(none: the official split); remove data.split"
        )
    return _build(Recipe, raw, "")


def validate(r: Recipe) -> None:
    """Value checks that types alone do not catch."""
    checks = [*_data_and_feature_checks(r), *_model_train_and_decode_checks(r)]
    for ok, msg in checks:
        if not ok:
            raise InputError(f"recipe {r.name}: {msg}")


def _data_and_feature_checks(r: Recipe) -> list[tuple[bool, str]]:
    return [
        (r.data.sample_rate > 0, "data.sample_rate must be positive"),
        (r.data.max_duration > 0, "data.max_duration must be positive (seconds)"),
        (
            1 <= r.data.connected.min_words <= r.data.connected.max_words,
            "data.connected: need 1 <= min_words <= max_words",
        ),
        (all(n >= 0 for n in r.data.connected.per_split.values()), "data.connected.per_split counts must be >= 0"),
        (
            not r.data.speed_perturb
            or (len(r.data.speed_perturb) == 2 and 0.5 <= r.data.speed_perturb[0] <= r.data.speed_perturb[1] <= 2.0),
            "data.speed_perturb must be [low, high] with 0.5 <= low <= high <= 2",
        ),
        (
            set(r.data.connected.per_split) <= {"train", "dev", "test"},
            "data.connected.per_split keys must be train, dev or test",
        ),
        (
            len(r.data.connected.gap_seconds) == 2
            and 0 <= r.data.connected.gap_seconds[0] <= r.data.connected.gap_seconds[1],
            "data.connected.gap_seconds must be [min, max] with 0 <= min <= max",
        ),
        *_speech_commands_checks(r.data.speech_commands),
        *_digits_checks(r.data.digits),
        (
            not r.features.vtlp
            or (len(r.features.vtlp) == 2 and 0.7 <= r.features.vtlp[0] <= r.features.vtlp[1] <= 1.4),
            "features.vtlp must be [low, high] with 0.7 <= low <= high <= 1.4",
        ),
        (
            not r.features.vtlp or r.features.type == "logmel",
            "features.vtlp warps log-mel bands: it needs features.type logmel",
        ),
        (0 <= r.features.channel <= 3, "features.channel must be between 0 and 3 (a std in normalised feature units)"),
        (r.features.cepstra >= 0, "features.cepstra must be >= 0 (0 keeps every band)"),
        (r.data.targets in TARGETS, f"data.targets must be one of {', '.join(TARGETS)}"),
        (r.data.oov in ("error", "drop", "map"), "data.oov must be error, drop or map"),
        (r.data.phonemes.layout in ("hw3p2", "an4"), "data.phonemes.layout must be hw3p2 or an4"),
        (r.data.echo.delay >= 0 and r.data.echo.max_delay >= 0, "data.echo: delay and max_delay must be >= 0"),
        (r.data.echo.length > 0, "data.echo.length must be positive"),
        (all(n >= 0 for n in r.data.echo.per_split.values()), "data.echo.per_split counts must be >= 0"),
        *_specaugment_checks(r.features.specaugment),
        (r.features.type in ("logmel", "precomputed"), "features.type must be logmel or precomputed"),
        (r.features.n_mels > 0, "features.n_mels must be positive"),
        (r.features.cmvn in CMVN_MODES, f"features.cmvn must be one of {', '.join(CMVN_MODES)}"),
        (r.features.hop_ms > 0 and r.features.win_ms >= r.features.hop_ms, "features: need win_ms >= hop_ms > 0"),
        (
            0 <= r.features.f_min < (r.features.f_max or r.data.sample_rate / 2) <= r.data.sample_rate / 2,
            "features: need 0 <= f_min < f_max <= sample_rate / 2",
        ),
    ]


def _model_train_and_decode_checks(r: Recipe) -> list[tuple[bool, str]]:
    return [
        (
            r.model.hidden > 0 and r.model.layers > 0 and r.model.conv_channels > 0,
            "model.hidden, model.layers and model.conv_channels must be positive",
        ),
        (r.model.name in MODEL_NAMES, f"model.name must be one of {', '.join(MODEL_NAMES)}"),
        (r.model.head in ("ctc", "classifier", "frame"), "model.head must be ctc, classifier or frame"),
        (r.model.pool in ("last", "mean", "attention"), "model.pool must be last, mean or attention"),
        (r.model.subsample in (1, 2, 3, 4), "model.subsample must be 1, 2, 3 or 4"),
        (r.model.frontend in ("none", "stack", "conv", "resnet"), "model.frontend must be none, stack, conv or resnet"),
        (
            r.model.frontend != "none" or r.model.subsample == 1,
            "model.frontend none cannot subsample: set model.subsample to 1",
        ),
        (r.model.cnn_blocks >= 0, "model.cnn_blocks must be >= 0"),
        (r.model.projection >= 0, "model.projection must be >= 0 (0 = no projection)"),
        (
            r.model.name not in ("lstm", "bilstm") or r.model.projection < r.model.hidden,
            "model.projection must be smaller than model.hidden for an LSTM",
        ),
        (r.model.nonlinearity in ("tanh", "relu"), "model.nonlinearity must be tanh or relu"),
        (r.model.context >= 0, "model.context must be >= 0"),
        (0 <= r.model.dropout < 1, "model.dropout must be in [0, 1)"),
        (r.train.epochs > 0, "train.epochs must be positive"),
        (r.train.batch_seconds > 0, "train.batch_seconds must be positive"),
        (r.train.lr > 0, "train.lr must be positive"),
        (r.train.weight_decay >= 0, "train.weight_decay must be >= 0"),
        (0 <= r.train.warmup < 1, "train.warmup must be in [0, 1) (a fraction of the steps)"),
        (r.train.threads >= 0, "train.threads must be >= 0 (0 = the default)"),
        (r.train.optimizer in ("adamw", "sgd"), "train.optimizer must be adamw or sgd"),
        (r.train.schedule in SCHEDULES, f"train.schedule must be one of {', '.join(SCHEDULES)}"),
        (r.train.accum_steps >= 1, "train.accum_steps must be >= 1"),
        (r.train.precision in ("fp32", "bf16", "fp16"), "train.precision must be fp32, bf16 or fp16"),
        (0 < r.train.plateau_factor < 1, "train.plateau_factor must be in (0, 1)"),
        (r.train.plateau_patience >= 0, "train.plateau_patience must be >= 0"),
        (r.train.early_stop >= 0, "train.early_stop must be >= 0 (0 = off)"),
        (
            r.train.metric in ("auto", "wer", "cer", "loss", "accuracy"),
            "train.metric must be auto, wer, cer, loss or accuracy",
        ),
        (r.train.save_every >= 0, "train.save_every must be >= 0"),
        (r.train.keep_best >= 1, "train.keep_best must be >= 1"),
        (0 <= r.train.average <= r.train.keep_best, "train.average must be between 0 and train.keep_best"),
        (r.train.consistency >= 0, "train.consistency must be >= 0 (0: no consistency training)"),
        (
            r.train.consistency == 0 or r.model.head == "ctc",
            "train.consistency regularises CTC posteriors: it needs model.head ctc",
        ),
        (r.train.clip >= 0, "train.clip must be >= 0 (0 = no clipping)"),
        *r.decode.checks(lambda k: f"decode.{k}"),
    ]


def _specaugment_checks(sa: SpecAugmentConfig | None) -> list[tuple[bool, str]]:
    """SpecAugment sizes: counts and widths >= 0, the time width a fraction of the utterance."""
    if sa is None:
        return []
    p = "features.specaugment"
    return [
        (
            min(sa.freq_masks, sa.freq_width, sa.time_masks) >= 0,
            f"{p}: freq_masks, freq_width and time_masks must be >= 0",
        ),
        (0 <= sa.time_width <= 1, f"{p}.time_width must be in [0, 1] (a fraction of the utterance)"),
    ]


def _speech_commands_checks(sc: SpeechCommandsConfig) -> list[tuple[bool, str]]:
    p = "data.speech_commands"
    return [
        (bool(sc.classes), f"{p}.classes must not be empty: ['all'], ['12'] or a list of words"),
        (
            len(sc.classes) == 1 or not {"all", "12"} & set(sc.classes),
            f"{p}.classes: 'all' and '12' stand alone, not in a list",
        ),
        (sc.clip_seconds > 0, f"{p}.clip_seconds must be positive"),
        (
            sc.silence_fraction >= 0 and sc.unknown_fraction >= 0,
            f"{p}: silence_fraction and unknown_fraction must be >= 0",
        ),
        (sc.augment_copies >= 0, f"{p}.augment_copies must be >= 0"),
        (0 <= sc.noise_prob <= 1, f"{p}.noise_prob must be in [0, 1]"),
        (
            len(sc.noise_snr) == 2 and sc.noise_snr[0] <= sc.noise_snr[1],
            f"{p}.noise_snr must be [low, high] dB with low <= high",
        ),
        (sc.shift_ms >= 0, f"{p}.shift_ms must be >= 0"),
        (sc.version in ("v0.01", "v0.02"), f"{p}.version must be v0.01 or v0.02"),
    ]


DIGIT_SOURCES = ("fsdd", "speech_commands", "tts", "an4")


def _digits_checks(d: DigitsConfig) -> list[tuple[bool, str]]:
    p = "data.digits"
    return [
        (
            bool(d.sources) and set(d.sources) <= set(DIGIT_SOURCES),
            f"{p}.sources must be a non-empty list of {', '.join(DIGIT_SOURCES)}",
        ),
        ("fsdd" in d.sources, f"{p}.sources must include fsdd (its recordings make the dev and test sets)"),
        (
            set(d.connected_mix) <= set(DIGIT_SOURCES) and all(w >= 0 for w in d.connected_mix.values()),
            f"{p}.connected_mix: weights >= 0 for {', '.join(DIGIT_SOURCES)}",
        ),
        (d.tts.voices >= 0 and 0 <= d.tts.dev_voices <= d.tts.voices, f"{p}.tts: need 0 <= dev_voices <= voices"),
        (set(d.tts.engines) <= {"espeak-ng", "flite", "festival"}, f"{p}.tts.engines: espeak-ng, flite or festival"),
        (
            not d.pitch_shift or (len(d.pitch_shift) == 2 and -12 <= d.pitch_shift[0] <= d.pitch_shift[1] <= 12),
            f"{p}.pitch_shift must be [low, high] semitones within [-12, 12]",
        ),
        (d.speech_commands_max >= 0, f"{p}.speech_commands_max must be >= 0"),
        (d.pitch_copies >= 0, f"{p}.pitch_copies must be >= 0"),
        (d.an4_copies >= 1, f"{p}.an4_copies must be >= 1"),
        (0 <= d.mixed_voices <= 1, f"{p}.mixed_voices must be in [0, 1]"),
        (d.trim_db > 0, f"{p}.trim_db must be positive"),
        (
            0 <= d.noise_prob <= 1 and 0 <= d.reverb_prob <= 1 and 0 <= d.endpoint_prob <= 1,
            f"{p}: noise_prob, reverb_prob and endpoint_prob must be in [0, 1]",
        ),
        (
            len(d.endpoint_db) == 2 and 0 < d.endpoint_db[0] <= d.endpoint_db[1],
            f"{p}.endpoint_db must be [low, high] dB with 0 < low <= high",
        ),
        (
            len(d.noise_snr) == 2 and d.noise_snr[0] <= d.noise_snr[1],
            f"{p}.noise_snr must be [low, high] dB with low <= high",
        ),
        (
            len(d.reverb_rt60) == 2 and 0 < d.reverb_rt60[0] <= d.reverb_rt60[1] <= 2,
            f"{p}.reverb_rt60 must be [low, high] seconds in (0, 2]",
        ),
    ]


def save_recipe(r: Recipe, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(r.to_dict(), sort_keys=False))
