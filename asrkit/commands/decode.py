"""`asrkit decode`: audio → hypotheses, batched through the model and read by its head (CTC, classifier, frames);
written as `id<TAB>text`, JSON lines, NIST CTM or a Kaggle submission."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from asrkit.align.timing import Span, ctm_lines
from asrkit.audio import read_audio, resample, wav_shortfall
from asrkit.config import DecodeOptions, load_recipe
from asrkit.data.inputs import InputItem, collect_inputs
from asrkit.decode.chunked import batch_log_probs
from asrkit.decode.ctc import Hypothesis
from asrkit.decode.lexicon import build_lexicon, read_lexicon_words
from asrkit.decode.search import Decoder, check_lm_file, frame_labels, rank_labels
from asrkit.decode.vtln import check_warpable
from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text, check_writable
from asrkit.models.choice import pick_model
from asrkit.phonemes import write_submission
from asrkit.progress import Progress

SILENCE_PEAK = 1e-3  # -60 dBFS: audio with no louder sample is silence, which a CTC model's utterance CMVN would blow up into noise
_CLI_NAMES = {"hotwords": "--hotword"}


def option_name(setting: str) -> str:
    """How `asrkit decode` spells a DecodeOptions setting: `chunk_seconds` → `--chunk-seconds`."""
    return _CLI_NAMES.get(setting, "--" + setting.replace("_", "-"))


def recipe_options(recipe: str | Path | None) -> DecodeOptions | None:
    """The `decode:` section of a recipe YAML (None for no recipe)."""
    return load_recipe(recipe).decode if recipe is not None else None


def check_given(given: dict[str, Any], base: DecodeOptions | None = None) -> None:
    """Refusals of the settings given on the command line (over `base`, a recipe's), before any model loads."""
    base = base or DecodeOptions()
    base.override(**given).check(option_name)
    if given.get("lm", base.lm) is None and (given.get("alpha") is not None or given.get("beta") is not None):
        raise InputError("--alpha and --beta weigh the LM in the beam search: give an --lm too")
    check_lm_file(given.get("lm"))


def resolve_options(given: dict[str, Any], base: DecodeOptions | None, model_recipe: dict | None) -> DecodeOptions:
    """The settings `given` (None: not given); the others from `base` (a recipe's `decode:` section), else from the
    recipe the model was trained with, else DecodeOptions' defaults."""
    if base is None:
        base = DecodeOptions.from_dict((model_recipe or {}).get("decode"))
    return base.override(**given).check(option_name)


def _write(path: str | Path, option: str, write) -> None:
    """Run `write(path)`; a failure to write (disk full, a read-only file system) is one line naming the file."""
    try:
        write(path)
    except OSError as e:
        raise InputError(f"cannot write {option} {path}: {e.strerror or e}") from None


# ---- reading the inputs ----------------------------------------------------------------------------------------


def _duration(it: InputItem, hop: float) -> float:
    """An input's length in seconds without decoding it (manifest field, audio header, or .npy shape)."""
    if it.duration:
        return it.duration
    try:
        if it.audio is not None:
            return float(sf.info(it.audio).duration)
        if it.features is not None:
            return float(np.load(it.features, mmap_mode="r").shape[0] * hop)
    except Exception:  # unreadable input: sorted last; reading it for real gives the proper error
        return math.inf
    return 0.0


def _item_features(model, it: InputItem, cmvn: str | None = None):
    """Normalised features of one input; None for the audio of a CTC model that holds only silence (no sample above
    SILENCE_PEAK); the InputError itself for an input that cannot be read, so that the others still decode."""
    try:
        if it.audio is None or model.precomputed:
            return model.item_features(it.audio, it.features, cmvn)
        x, sr = read_audio(it.audio)
        missing = wav_shortfall(it.audio, len(x))
        if missing:
            print(
                f"decode: {it.audio} is cut short: {100 * missing:.0f} % of the samples its header promises are "
                "missing; decoding what is there",
                file=sys.stderr,
            )
        window = model.feature_settings["win_ms"] / 1000
        if len(x) < window * sr and model.task == "ctc":
            print(
                f"decode: {it.audio} holds {1000 * len(x) / sr:.1f} ms of audio, less than one {1000 * window:.0f} ms "
                "frame: empty transcript",
                file=sys.stderr,
            )
            return None
        wav = resample(torch.from_numpy(x), sr, model.sample_rate)
    except InputError as e:
        return e
    if model.task == "ctc" and float(wav.abs().max()) < SILENCE_PEAK:
        print(f"decode: {it.audio} is silent (no sample above -60 dBFS): empty transcript", file=sys.stderr)
        return None
    return model.features(wav, cmvn)


def _batches(
    items: list[InputItem], model, max_seconds: float, cmvn: str | None = None
) -> Iterator[list[tuple[InputItem, object]]]:
    """Featurised inputs in batches of similar length whose padded size stays under `max_seconds`.

    Inputs are sorted by their length from headers or manifests and read one batch at a time, so
    a large input list never holds more than one batch of features in memory.
    """
    hop = model.feature_settings["hop_ms"] / 1000
    # one header read per input: the length both sorts and fills the batches
    order = sorted((_duration(it, hop), i, it) for i, it in enumerate(items))
    cur: list = []
    longest = 0.0
    for d, _, it in order:
        if cur and max(longest, d) * (len(cur) + 1) > max_seconds:
            yield [(x, _item_features(model, x, cmvn)) for x in cur]
            cur, longest = [], 0.0
        cur.append(it)
        longest = max(longest, d)
    if cur:
        yield [(x, _item_features(model, x, cmvn)) for x in cur]


# ---- one function per head type ------------------------------------------------------------------------------


def decode_ctc(
    am, decoder: Decoder, feats: list[torch.Tensor], options: DecodeOptions, with_times: bool
) -> list[list[Hypothesis]]:
    """CTC: the model's log-probabilities (long inputs chunked) through the beam search; n-best with text (and times)."""
    return decoder.decode(batch_log_probs(am, feats, options.chunk_seconds, options.vtln), with_times)


def decode_frames(am, feats: list[torch.Tensor], options: DecodeOptions) -> list[list[Hypothesis]]:
    """Frame models: one label per frame, the arg-max of each."""
    return frame_labels(am.tokenizer, batch_log_probs(am, feats, options.chunk_seconds, options.vtln))


def decode_classifier(am, feats: list[torch.Tensor], options: DecodeOptions) -> list[list[Hypothesis]]:
    """Classifiers: the `beam` most probable labels, best first, each as a one-token hypothesis."""
    index = am.tokenizer.index
    return [
        [Hypothesis([index[label]], label, lp) for label, lp in ranked]
        for ranked in rank_labels(am, feats, max(options.beam, 1))
    ]


# ---- one function per output format --------------------------------------------------------------------------


def json_record(
    am,
    utt: str,
    hyps: list[Hypothesis],
    times: tuple[list[Span], list[Span]] | None = None,
    as_classifier: bool = False,
) -> dict:
    """The JSON line of one utterance: text, score, n-best, tokens with their emission frames (`timesteps`, frames as
    in the Python API's Hypothesis) and token and word times in seconds (`token_times`, `words`)."""
    tok = am.tokenizer
    best = hyps[0]
    rec: dict = {"id": utt, "text": best.text, "score": round(best.score, 4)}
    if as_classifier:
        rec["probability"] = round(math.exp(best.score), 4)
    # token sequences that differ only by a leading or trailing space read the same: list each text once
    seen: set[str] = set()
    rec["nbest"] = [
        {"text": h.text, "score": round(h.score, 4)} for h in hyps if not (h.text in seen or seen.add(h.text))
    ]
    rec["tokens"] = [tok.symbols[t] for t in best.tokens]
    rec["timesteps"] = list(best.timesteps)
    rec["frame_shift"] = am.frame_shift
    if times is not None:
        rec["token_times"] = [t.as_dict() for t in times[0]]
        rec["words"] = [w.as_dict() for w in times[1]]
    return rec


def text_lines(results: dict[str, Hypothesis], order: list[str]) -> list[str]:
    """`id<TAB>text` per input."""
    return [f"{i}\t{results[i].text}" for i in order]


def json_lines(records: dict[str, dict], order: list[str]) -> list[str]:
    """One JSON object per input (`json_record`)."""
    return [json.dumps(records[i], ensure_ascii=False) for i in order]


def write_ctm(path: str | Path, ctm: dict[str, list[str]], order: list[str]) -> None:
    """The words of every input with their times, as NIST CTM."""
    rows = [line for i in order for line in ctm.get(i, [])]
    _write(path, "--ctm", lambda p: atomic_write_text(p, "\n".join(rows) + ("\n" if rows else "")))


def write_transcripts(lines: list[str], output: str | Path | None) -> None:
    """The transcript lines into `output`, or on stdout."""
    text = "\n".join(lines) + ("\n" if lines else "")
    if output:
        _write(output, "--output", lambda p: atomic_write_text(p, text))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


# ---- the command -----------------------------------------------------------------------------------------------


class _Collected:
    """What the decoded inputs gave: per id, the best hypothesis, its JSON record and its CTM lines."""

    def __init__(self, am, as_json: bool, with_times: bool):
        self.am, self.as_json, self.with_times = am, as_json, with_times
        self.results: dict[str, Hypothesis] = {}
        self.records: dict[str, dict] = {}
        self.ctm: dict[str, list[str]] = {}
        self.failed: list[str] = []

    def add(self, utt: str, hyps: list[Hypothesis], as_classifier: bool = False) -> None:
        self.results[utt] = hyps[0]
        times = None
        if self.with_times and self.am.task == "ctc":
            times = (hyps[0].token_spans, hyps[0].words)
            self.ctm[utt] = ctm_lines(utt, times[1])
        if self.as_json:
            self.records[utt] = json_record(self.am, utt, hyps, times, as_classifier)

    def add_silence(self, utt: str) -> None:
        """An empty transcript: the model not run."""
        hyp = Hypothesis([], "", 0.0, [])
        self.results[utt] = hyp
        if self.as_json:
            self.records[utt] = json_record(self.am, utt, [hyp], ([], []) if self.with_times else None)


def _check_model(am, path: Path, options: DecodeOptions, submission: str | Path | None) -> None:
    """Refusals of settings this model cannot take, before any input is read."""
    tok = am.tokenizer
    if am.task == "classifier" and options.lexicon is not None:
        raise InputError(
            f"--lexicon constrains CTC decoding; {path} is a classifier (it outputs one of its {len(tok)} labels)"
        )
    if options.lm is not None and am.task != "ctc":
        raise InputError(f"--lm decodes CTC outputs; {path} has a {am.task} head")
    if options.vtln and am.task == "classifier":
        raise InputError("--vtln applies to CTC and frame models; this one is a classifier")
    if options.vtln:
        check_warpable(am.feature_settings)
    am.check_cmvn(options.cmvn)
    if submission is not None and tok.kind != "phoneme":
        raise InputError(f"--submission writes phoneme strings; {path} was trained on {tok.kind} targets")


def _decode_batch(am, decoder: Decoder | None, batch: list, options: DecodeOptions, out: _Collected) -> None:
    """Decode one batch of readable, non-silent inputs with the function of the model's head."""
    feats = [f for _, f in batch]
    if am.task == "classifier":
        nbests = decode_classifier(am, feats, options)
    elif am.task == "frame":
        nbests = decode_frames(am, feats, options)
    else:
        nbests = decode_ctc(am, decoder, feats, options, out.with_times)
    for (it, _), hyps in zip(batch, nbests):
        out.add(it.id, hyps, as_classifier=am.task == "classifier")


def _decode_all(
    am,
    decoder: Decoder | None,
    items: list[InputItem],
    options: DecodeOptions,
    out: _Collected,
    batch_seconds: float,
    quiet: bool,
) -> None:
    """Every input through the model in batches; an unreadable one is skipped with one line (alone, it is the error)."""
    with Progress(quiet) as prog:
        task = prog.add("decode", total=len(items), unit="utt")
        for batch in _batches(items, am, batch_seconds, options.cmvn):
            for it, err in [(it, f) for it, f in batch if isinstance(f, InputError)]:
                if len(items) == 1:
                    raise err
                print(f"decode: skipped: {err}", file=sys.stderr)  # one line each; the good inputs go on
                out.failed.append(it.id)
                prog.advance(task, 1)
            batch = [(it, f) for it, f in batch if not isinstance(f, InputError)]
            for it in [it for it, f in batch if f is None]:
                out.add_silence(it.id)
                prog.advance(task, 1)
            batch = [(it, f) for it, f in batch if f is not None]
            if batch:
                _decode_batch(am, decoder, batch, options, out)
                prog.advance(task, len(batch))


def decode(
    model: str | Path | None,
    inputs: list[str | Path],
    settings: dict[str, Any] | None = None,
    recipe: str | Path | None = None,
    output: str | Path | None = None,
    as_json: bool = False,
    ctm: str | Path | None = None,
    submission: str | Path | None = None,
    batch_seconds: float = 200.0,
    quiet: bool = False,
) -> dict[str, Hypothesis]:
    """Decode audio files, directories or manifests with a checkpoint; writes `id<TAB>text` (or JSON lines).

    `model`: a checkpoint or export; None takes $ASRKIT_MODEL or the newest exp/*/best.pt (and says which).
    `settings`: DecodeOptions fields given (beam, lm, lexicon, ...; None: not given); the others come from `recipe`'s
    `decode:` section, else from the recipe the model was trained with. `as_json`: JSON lines with the n-best, token
    and word times in seconds; `ctm`: also the words as NIST CTM; `submission`: also the Kaggle `index,label` CSV
    (phoneme models; one character per phoneme, input order).
    """
    given = {k: v for k, v in (settings or {}).items() if v is not None}
    base = recipe_options(recipe)
    check_given(given, base)
    for dest, option in ((output, "--output"), (ctm, "--ctm"), (submission, "--submission")):
        if dest is not None:
            check_writable(dest, option)  # before the model loads and the inputs decode
    lex_words = read_lexicon_words(given["lexicon"]) if "lexicon" in given else None  # fail before the model loads
    items = collect_inputs(inputs)
    path, why, am = pick_model(model, reads_audio=any(it.features is None for it in items))
    if why:
        print(f"decode: using {path} ({why})", file=sys.stderr)
    options = resolve_options(given, base, am.recipe)
    _check_model(am, path, options, submission)
    decoder = None
    if am.task != "classifier":  # the LM or lexicon built (and checked) before any input is read
        if lex_words is not None and options.lexicon == given["lexicon"]:
            options = options.override(lexicon=build_lexicon(lex_words, given["lexicon"], am.tokenizer))
        decoder = Decoder(am.tokenizer, am.frame_shift, options)
    out = _Collected(am, as_json, as_json or ctm is not None)
    _decode_all(am, decoder, items, options, out, batch_seconds, quiet)
    order = [it.id for it in items if it.id in out.results]
    if not order:  # nothing to write: an earlier output file stays as it was
        raise InputError(f"none of the {len(items)} inputs could be read (each named above)")
    if submission is not None:
        _write(submission, "--submission", lambda p: write_submission([out.results[i].text for i in order], p))
    if ctm is not None:
        write_ctm(ctm, out.ctm, order)
    write_transcripts(json_lines(out.records, order) if as_json else text_lines(out.results, order), output)
    if out.failed:
        raise InputError(
            f"{len(out.failed)} of {len(items)} inputs could not be read (each named above); "
            f"the other {len(items) - len(out.failed)} are decoded"
        )
    return out.results
