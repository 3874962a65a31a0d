"""`asrkit decode`: audio → hypotheses, batched through the model, beam or greedy over the posteriors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from asrkit.data.inputs import InputItem, collect_inputs
from asrkit.decode.ctc import Hypothesis, ctc_decode
from asrkit.fsutil import atomic_write_text
from asrkit.progress import Progress


def _batches(items: list[InputItem], model, max_frames: int) -> Iterator[list[tuple[InputItem, object]]]:
    """Read and featurise inputs, yielding batches whose padded size stays under `max_frames`."""
    from asrkit.audio import load_audio

    feats = [(it, model.features(load_audio(it.audio, model.sample_rate))) for it in items]
    feats.sort(key=lambda x: x[1].shape[0])
    cur: list = []
    for it, f in feats:
        if cur and f.shape[0] * (len(cur) + 1) > max_frames:
            yield cur
            cur = []
        cur.append((it, f))
    if cur:
        yield cur


def decode(
    model: str | Path,
    inputs: list[str | Path],
    beam: int = 10,
    output: str | Path | None = None,
    as_json: bool = False,
    batch_seconds: float = 200.0,
    quiet: bool = False,
) -> dict[str, Hypothesis]:
    """Decode audio files, directories or manifests with a checkpoint; writes `id<TAB>text` (or JSONL)."""
    from asrkit.models.acoustic import AcousticModel

    am = AcousticModel.load(model)
    items = collect_inputs(inputs)
    hop = am.feature_settings["hop_ms"] / 1000
    tok = am.tokenizer
    results: dict[str, Hypothesis] = {}
    with Progress(quiet) as prog:
        task = prog.add("decode", total=len(items), unit="utt")
        for batch in _batches(items, am, int(batch_seconds / hop)):
            for (it, _), lp in zip(batch, am.log_probs([f for _, f in batch])):
                hyp = ctc_decode(lp.numpy(), beam=beam, blank=tok.blank)[0]
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
                    "tokens": [tok.symbols[t] for t in results[i].tokens],
                    "timesteps": [round(t * am.frame_shift, 3) for t in results[i].timesteps],
                },
                ensure_ascii=False,
            )
            for i in order
        ]
    else:
        lines = [f"{i}\t{results[i].text}" for i in order]
    text = "\n".join(lines) + ("\n" if lines else "")
    if output:
        atomic_write_text(output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return results
