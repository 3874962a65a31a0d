"""`asrkit decode`: audio → hypotheses, batched through the model, beam or greedy over the posteriors."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

from asrkit.data.inputs import InputItem, collect_inputs
from asrkit.decode.ctc import Hypothesis
from asrkit.decode.lexicon import build_lexicon, read_lexicon_words
from asrkit.align.timing import Span, ctm_lines
from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text, check_writable
from asrkit.models.choice import pick_model
from asrkit.progress import Progress


def check_search(lm: str | Path | None, lexicon: str | Path | None, hotwords) -> None:
    """The one-line refusals of search options that do not go together (for `decode` and `decode --stream`)."""
    if lm is not None and lexicon is not None:
        raise InputError("--lm and --lexicon both restrict the words: give one of them")
    if hotwords and lm is None:
        raise InputError("--hotword boosts words in the LM beam search: give an --lm too")


def _write(path: str | Path, option: str, write) -> None:
    """Run `write(path)`; a failure to write (disk full, a read-only file system) is one line naming the file."""
    try:
        write(path)
    except OSError as e:
        raise InputError(f"cannot write {option} {path}: {e.strerror or e}") from None


def _duration(it: InputItem, hop: float) -> float:
    """An input's length in seconds without decoding it (manifest field, audio header, or .npy shape)."""
    if it.duration:
        return it.duration
    try:
        if it.audio is not None:
            import soundfile as sf

            return float(sf.info(it.audio).duration)
        if it.features is not None:
            import numpy as np

            return float(np.load(it.features, mmap_mode="r").shape[0] * hop)
    except Exception:  # unreadable input: sorted last; reading it for real gives the proper error
        return math.inf
    return 0.0


SILENCE_PEAK = 1e-3  # -60 dBFS: audio with no louder sample is silence, which a CTC model's utterance CMVN would blow up into noise


def _item_features(model, it: InputItem):
    """Normalised features of one input; None for the audio of a CTC model that holds only silence (no sample above
    SILENCE_PEAK); the InputError itself for an input that cannot be read, so that the others still decode."""
    try:
        if it.audio is None or model.precomputed:
            return model.item_features(it.audio, it.features)
        from asrkit.audio import read_audio, resample, wav_shortfall

        import torch

        x, sr = read_audio(it.audio)
        missing = wav_shortfall(it.audio, len(x))
        if missing:
            print(f"decode: {it.audio} is cut short: {100 * missing:.0f} % of the samples its header promises are "
                  "missing; decoding what is there", file=sys.stderr)
        window = model.feature_settings["win_ms"] / 1000
        if len(x) < window * sr and model.task == "ctc":
            print(f"decode: {it.audio} holds {1000 * len(x) / sr:.1f} ms of audio, less than one {1000 * window:.0f} ms "
                  "frame: empty transcript", file=sys.stderr)
            return None
        wav = resample(torch.from_numpy(x), sr, model.sample_rate)
    except InputError as e:
        return e
    if model.task == "ctc" and float(wav.abs().max()) < SILENCE_PEAK:
        print(f"decode: {it.audio} is silent (no sample above -60 dBFS): empty transcript", file=sys.stderr)
        return None
    return model.features(wav)


def _batches(items: list[InputItem], model, max_seconds: float) -> Iterator[list[tuple[InputItem, object]]]:
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
            yield [(x, _item_features(model, x)) for x in cur]
            cur, longest = [], 0.0
        cur.append(it)
        longest = max(longest, d)
    if cur:
        yield [(x, _item_features(model, x)) for x in cur]


def _record(am, utt: str, hyps: list[Hypothesis], times: tuple[list[Span], list[Span]] | None = None, as_classifier: bool = False) -> dict:
    """The JSON line of one utterance: text, score, n-best, tokens with their emission frames (`timesteps`, frames as
    in the Python API's Hypothesis) and token and word times in seconds (`token_times`, `words`)."""
    tok = am.tokenizer
    best = hyps[0]
    rec: dict = {"id": utt, "text": best.text, "score": round(best.score, 4)}
    if as_classifier:
        rec["probability"] = round(math.exp(best.score), 4)
    # token sequences that differ only by a leading or trailing space read the same: list each text once
    seen: set[str] = set()
    rec["nbest"] = [{"text": h.text, "score": round(h.score, 4)} for h in hyps if not (h.text in seen or seen.add(h.text))]
    rec["tokens"] = [tok.symbols[t] for t in best.tokens]
    rec["timesteps"] = list(best.timesteps)
    rec["frame_shift"] = am.frame_shift
    if times is not None:
        rec["token_times"] = [t.as_dict() for t in times[0]]
        rec["words"] = [w.as_dict() for w in times[1]]
    return rec


def decode(
    model: str | Path | None,
    inputs: list[str | Path],
    beam: int = 10,
    output: str | Path | None = None,
    as_json: bool = False,
    batch_seconds: float = 200.0,
    quiet: bool = False,
    lexicon: str | Path | None = None,
    submission: str | Path | None = None,
    ctm: str | Path | None = None,
    chunk_seconds: float = 20.0,
    lm: str | Path | None = None,
    alpha: float = 0.5,
    beta: float = 1.0,
    hotwords: list[str] | None = None,
    hotword_weight: float = 10.0,
    workers: int = 0,
    vtln: bool = False,
) -> dict[str, Hypothesis]:
    """Decode audio files, directories or manifests with a checkpoint; writes `id<TAB>text` (or JSONL).

    `model`: a checkpoint; None takes $ASRKIT_MODEL or the newest exp/*/best.pt (and says which).
    `lexicon`: a word list or a manifest whose words constrain the beam search (see `load_lexicon`;
    with a lexicon, beam 1 searches with beam 2 since greedy decoding cannot honour it).
    `lm`: a word n-gram (ARPA or KenLM binary) fused by pyctcdecode's beam search with weight `alpha`
    and word bonus `beta`; `hotwords` get `hotword_weight`; `workers` > 1 decodes in a process pool.
    `as_json`: JSON lines with the n-best, token and word timestamps in seconds. `ctm`: also write
    the words as NIST CTM. `vtln`: each input read under its most probable frequency warp (voices the
    model never heard; `asrkit.decode.vtln`). Inputs longer than `chunk_seconds` run through the model in overlapping
    windows cut in pauses (`asrkit.decode.chunked`), so memory stays bounded. `submission`: also write the Kaggle `index,label` CSV (phoneme models;
    one character per phoneme, input order).
    """
    check_search(lm, lexicon, hotwords)
    if lm is not None and not Path(lm).is_file():
        raise InputError(f"language model {lm} not found")
    for dest, option in ((output, "--output"), (ctm, "--ctm"), (submission, "--submission")):
        if dest is not None:
            check_writable(dest, option)  # before the model loads and the inputs decode
    lex_words = read_lexicon_words(lexicon) if lexicon is not None else None  # fail before the model loads
    items = collect_inputs(inputs)
    path, why, am = pick_model(model, reads_audio=any(it.features is None for it in items))
    if why:
        print(f"decode: using {path} ({why})", file=sys.stderr)
    tok = am.tokenizer
    if am.task == "classifier" and lex_words is not None:
        raise InputError(f"--lexicon constrains CTC decoding; {path} is a classifier (it outputs one of its {len(tok)} labels)")
    lex = build_lexicon(lex_words, lexicon, tok) if lex_words is not None else None
    from asrkit.api import Recognizer

    rec = Recognizer(am, path)  # the Python API's functions: `asrkit.load(path).transcribe(...)` gives the same answers
    if lm is not None:
        if am.task != "ctc":
            raise InputError(f"--lm decodes CTC outputs; {path} has a {am.task} head")
        rec._lm(lm, alpha, beta, beam, tuple(hotwords or ()), hotword_weight)  # built (and checked) before any input is read
    if vtln and am.task == "classifier":
        raise InputError("--vtln applies to CTC and frame models; this one is a classifier")
    if vtln:
        from asrkit.decode.vtln import check_warpable

        check_warpable(am.feature_settings)  # before any input is read
    if submission is not None and tok.kind != "phoneme":
        raise InputError(f"--submission writes phoneme strings; {path} was trained on {tok.kind} targets")
    with_times = as_json or ctm is not None
    if chunk_seconds < 1.0:
        raise InputError(f"--chunk-seconds must be at least 1 second, got {chunk_seconds}")
    results: dict[str, Hypothesis] = {}
    records: dict[str, dict] = {}
    ctm_out: dict[str, list[str]] = {}
    failed: list[str] = []
    with Progress(quiet) as prog:
        task = prog.add("decode", total=len(items), unit="utt")
        for batch in _batches(items, am, batch_seconds):
            for it, err in [(it, f) for it, f in batch if isinstance(f, InputError)]:
                if len(items) == 1:
                    raise err
                print(f"decode: skipped: {err}", file=sys.stderr)  # one line each; the good inputs go on
                failed.append(it.id)
                prog.advance(task, 1)
            batch = [(it, f) for it, f in batch if not isinstance(f, InputError)]
            for it in [it for it, f in batch if f is None]:  # silence: an empty transcript, the model not run
                results[it.id] = Hypothesis([], "", 0.0, [])
                records[it.id] = _record(am, it.id, [results[it.id]], ([], []) if with_times else None)
                prog.advance(task, 1)
            batch = [(it, f) for it, f in batch if f is not None]
            if not batch:
                continue
            feats = [f for _, f in batch]
            if am.task == "classifier":
                for (it, _), ranked in zip(batch, rec.classify_features(feats, max(beam, 1))):
                    hyps = [Hypothesis([tok.index[label]], label, lp) for label, lp in ranked]
                    results[it.id] = hyps[0]
                    records[it.id] = _record(am, it.id, hyps, as_classifier=True)
                    prog.advance(task)
                continue
            # a long recording runs in overlapping windows, their centres stitched (bounded memory)
            lps = rec.log_probs_features(feats, chunk_seconds, vtln=vtln)
            if am.task == "frame":  # one label per frame: the arg-max of each
                nbests = []
                for lp in lps:
                    best = lp.argmax(-1)
                    ids = best.tolist()
                    nbests.append([Hypothesis(ids, tok.decode(ids), float(lp.gather(-1, best[:, None]).sum()), list(range(len(ids))))])
            else:
                nbests = rec.decode_features(
                    feats, beam, lm, alpha, beta, lex, with_times, lps, hotwords=hotwords, hotword_weight=hotword_weight, workers=workers
                )
            for (it, _), hyps in zip(batch, nbests):
                results[it.id] = hyps[0]
                if with_times:
                    times = None
                    if am.task == "ctc":
                        times = (hyps[0].token_spans, hyps[0].words)
                        ctm_out[it.id] = ctm_lines(it.id, times[1])
                    records[it.id] = _record(am, it.id, hyps, times)
                prog.advance(task, 1)
    order = [it.id for it in items if it.id in results]
    if not order:  # nothing to write: an earlier output file stays as it was
        raise InputError(f"none of the {len(items)} inputs could be read (each named above)")
    if as_json:
        lines = [json.dumps(records[i], ensure_ascii=False) for i in order]
    else:
        lines = [f"{i}\t{results[i].text}" for i in order]
    if submission is not None:
        from asrkit.phonemes import write_submission

        _write(submission, "--submission", lambda p: write_submission([results[i].text for i in order], p))
    if ctm is not None:
        rows = [line for i in order for line in ctm_out.get(i, [])]
        _write(ctm, "--ctm", lambda p: atomic_write_text(p, "\n".join(rows) + ("\n" if rows else "")))
    text = "\n".join(lines) + ("\n" if lines else "")
    if output:
        _write(output, "--output", lambda p: atomic_write_text(p, text))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if failed:
        raise InputError(f"{len(failed)} of {len(items)} inputs could not be read (each named above); "
                         f"the other {len(items) - len(failed)} are decoded")
    return results
