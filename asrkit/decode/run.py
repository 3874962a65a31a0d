"""`asrkit decode`: audio → hypotheses, batched through the model, beam or greedy over the posteriors."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

from asrkit.data.inputs import InputItem, collect_inputs
from asrkit.decode.beam import prefix_beam_search
from asrkit.decode.ctc import Hypothesis, Lexicon, lexicon_from_words
from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text
from asrkit.progress import Progress


def _batches(items: list[InputItem], model, max_frames: int) -> Iterator[list[tuple[InputItem, object]]]:
    """Read and featurise inputs, yielding batches whose padded size stays under `max_frames`."""
    feats = [(it, model.item_features(it.audio, it.features)) for it in items]
    feats.sort(key=lambda x: x[1].shape[0])
    cur: list = []
    for it, f in feats:
        if cur and f.shape[0] * (len(cur) + 1) > max_frames:
            yield cur
            cur = []
        cur.append((it, f))
    if cur:
        yield cur


def read_lexicon_words(path: str | Path) -> list[str]:
    """Words of a lexicon file: a word list (words one per line or whitespace-separated) or a
    JSONL manifest (the words of each utterance's `text`; told apart by a `.jsonl` suffix or a
    first non-blank line starting with `{`)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"lexicon file {p} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"lexicon file {p} is not UTF-8 text") from None
    if p.suffix.lower() == ".jsonl" or text.lstrip().startswith("{"):
        from asrkit.data.manifest import iter_manifest

        return [w for u in iter_manifest(p, resolve=False) for w in (u.text or "").split()]
    return text.split()


def load_lexicon(path: str | Path, tokenizer) -> Lexicon:
    """Read a word list or manifest (see `read_lexicon_words`) into a Lexicon for `tokenizer`."""
    return _build_lexicon(read_lexicon_words(path), path, tokenizer)


def _build_lexicon(words: list[str], path: str | Path, tokenizer) -> Lexicon:
    """`lexicon_from_words`, with errors that name the file the words came from."""
    if not words:
        raise InputError(f"lexicon file {path} holds no words")
    try:
        return lexicon_from_words(words, tokenizer)
    except InputError as e:
        raise InputError(f"lexicon file {path}: {e}") from None


def decode(
    model: str | Path,
    inputs: list[str | Path],
    beam: int = 10,
    output: str | Path | None = None,
    as_json: bool = False,
    batch_seconds: float = 200.0,
    quiet: bool = False,
    lexicon: str | Path | None = None,
    submission: str | Path | None = None,
) -> dict[str, Hypothesis]:
    """Decode audio files, directories or manifests with a checkpoint; writes `id<TAB>text` (or JSONL).

    `lexicon`: a word list or a manifest whose words constrain the beam search (see `load_lexicon`;
    with a lexicon, beam 1 searches with beam 2 since greedy decoding cannot honour it).
    `submission`: also write the Kaggle `index,label` CSV (phoneme models; one character per phoneme, input order).
    """
    from asrkit.models.acoustic import AcousticModel

    lex_words = read_lexicon_words(lexicon) if lexicon is not None else None  # fail before the model loads
    am = AcousticModel.load(model)
    items = collect_inputs(inputs)
    hop = am.feature_settings["hop_ms"] / 1000
    tok = am.tokenizer
    if am.task == "classifier" and lex_words is not None:
        raise InputError(f"--lexicon constrains CTC decoding; {model} is a classifier (it outputs one of its {len(tok)} labels)")
    lex = _build_lexicon(lex_words, lexicon, tok) if lex_words is not None else None
    if submission is not None and tok.kind != "phoneme":
        raise InputError(f"--submission writes phoneme strings; {model} was trained on {tok.kind} targets")
    results: dict[str, Hypothesis] = {}
    with Progress(quiet) as prog:
        task = prog.add("decode", total=len(items), unit="utt")
        for batch in _batches(items, am, int(batch_seconds / hop)):
            if am.task == "classifier":
                for (it, _), lp in zip(batch, am.classify([f for _, f in batch])):
                    best = int(lp.argmax())
                    results[it.id] = Hypothesis([best], tok.symbols[best], float(lp[best]))
                    prog.advance(task)
                continue
            if am.task == "frame":  # one label per frame: the arg-max of each
                for (it, _), lp in zip(batch, am.log_probs([f for _, f in batch])):
                    best = lp.argmax(-1)
                    ids = best.tolist()
                    results[it.id] = Hypothesis(ids, tok.decode(ids), float(lp.gather(-1, best[:, None]).sum()), list(range(len(ids))))
                    prog.advance(task)
                continue
            for (it, _), lp in zip(batch, am.log_probs([f for _, f in batch])):
                hyp = prefix_beam_search(lp.numpy(), beam, tok.blank, lexicon=lex)[0]
                hyp.text = tok.decode(hyp.tokens).strip()
                results[it.id] = hyp
                prog.advance(task)
    order = [it.id for it in items]
    if as_json:
        lines = [
            json.dumps(
                {
                    "id": i,
                    "text": results[i].text,
                    "score": round(results[i].score, 4),
                    **({"probability": round(math.exp(results[i].score), 4)} if am.task == "classifier" else {}),
                    "tokens": [tok.symbols[t] for t in results[i].tokens],
                    "timesteps": [round(t * am.frame_shift, 3) for t in results[i].timesteps],
                },
                ensure_ascii=False,
            )
            for i in order
        ]
    else:
        lines = [f"{i}\t{results[i].text}" for i in order]
    if submission is not None:
        from asrkit.phonemes import write_submission

        write_submission([results[i].text for i in order], submission)
    text = "\n".join(lines) + ("\n" if lines else "")
    if output:
        atomic_write_text(output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return results
