"""The training engine: exact resume after SIGKILL, two gloo processes under torchrun, best-N, averaging,
early stopping, plateau schedule, accumulation, and non-finite losses."""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from asrkit.assets import fsdd_root
from asrkit.config import load_recipe
from asrkit.data.featstore import FeatureStore, write_store
from asrkit.errors import InputError
from asrkit.models import build_model, count_parameters
from asrkit.models.checkpoint import average_checkpoints, load_checkpoint, save_checkpoint
from asrkit.train.trainer import amp_dtype, cpu_bf16_supported, train
from conftest import asrkit_cmd, digits_recipe_dict, run_cli


def _prepared_jackson_recipe(tmp: Path, n_indices: int, connected: dict, model: dict, train: dict) -> Path:
    """The digits recipe over jackson's first `n_indices` recordings of each digit (embedded FSDD copy), prepared."""
    src = fsdd_root() / "recordings"
    dst = tmp / "fsdd" / "recordings"
    dst.mkdir(parents=True)
    for d in range(10):
        for i in range(n_indices):
            shutil.copy(src / f"{d}_jackson_{i}.flac", dst)
    base = digits_recipe_dict()
    base["data"].update(root=str(dst.parent), out_dir=str(tmp / "data"), speed_perturb=[], connected=connected)
    base["model"].update(model)
    base["train"].update(train)
    p = tmp / "recipe.yaml"
    p.write_text(yaml.safe_dump(base))
    run_cli("prepare", str(p), "--quiet")
    return p


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A prepared tiny digits recipe (one speaker, 120 recordings + 60 connected) shared by the module's tests."""
    return _prepared_jackson_recipe(
        tmp_path_factory.mktemp("train"),
        12,
        {"per_split": {"train": 60, "dev": 8, "test": 4}, "min_words": 2, "max_words": 3, "gap_seconds": [0.05, 0.1]},
        {"name": "bilstm", "hidden": 24, "layers": 1, "subsample": 3},
        {"epochs": 3, "batch_seconds": 12, "lr": 0.004, "save_every": 3, "threads": 1, "keep_best": 2},
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _step(exp: Path) -> int:
    try:
        return int(torch.load(exp / "last.pt", weights_only=True)["run"]["step"])
    except Exception:  # absent, or replaced while we read it
        return -1


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tiny: Path, tmp_path: Path) -> None:
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_cli("train", str(tiny), "--quiet", "--set", f"train.exp_dir={ref}")
    rng = random.Random(7)
    kills = 0
    total = _step(ref)
    # kill points set by progress, not by the clock (a fast machine finishes a tiny run before a timer fires): once
    # the run has checkpointed past a fifth, two fifths, three fifths of its steps, then a few ms later (mid-step,
    # mid-write, mid-eval)
    for target in (total // 5, 2 * total // 5, 3 * total // 5):
        target = max(target, _step(killed) + 1)
        proc = subprocess.Popen(
            [*asrkit_cmd(), "train", str(tiny), "--quiet", "--set", f"train.exp_dir={killed}"], stderr=subprocess.PIPE
        )
        deadline = time.time() + 120
        while proc.poll() is None and _step(killed) < target and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 2, "the run finished before it could be killed twice; the test would prove nothing"
    run_cli("train", str(tiny), "--quiet", "--set", f"train.exp_dir={killed}")
    assert _same(_weights(ref / "last.pt"), _weights(killed / "last.pt"))
    assert _same(_weights(ref / "best.pt"), _weights(killed / "best.pt"))

    def strip(rows):
        return [
            {
                k: v
                for k, v in r.items()
                if k not in ("seconds", "audio_seconds_per_second", "train_audio_seconds_per_second")
            }
            for r in rows
        ]

    def read(p):
        return [json.loads(x) for x in (p / "metrics.jsonl").read_text().splitlines()]

    assert strip(read(ref)) == strip(read(killed))
    assert [r["epoch"] for r in read(killed)] == [1, 2, 3]
    assert not list(killed.rglob(".*.tmp"))  # temp files of killed writes are cleaned up on restart


def _kill_inside_write(tiny: Path, exp: Path, hold: str, *extra: str) -> None:
    """Run `asrkit train` until it stops inside the checkpoint write `hold` (NAME@N, the fault hook of
    asrkit.fsutil that tests/robustness/test_faults.py uses), then SIGKILL it there: a point set by the run, not the clock."""
    folder = exp.parent / f"hold-{exp.name}"
    folder.mkdir()
    proc = subprocess.Popen(
        [*asrkit_cmd(), "train", str(tiny), "--quiet", "--set", f"train.exp_dir={exp}", *extra],
        stderr=subprocess.PIPE,
        env={**os.environ, "ASRKIT_TEST_HOLD_WRITE": f"{hold}:{folder}"},
    )
    deadline = time.time() + 300  # only a limit on a hung run; the wait ends when the write is reached
    while not (folder / "ready").exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the run never reached the write of {hold}: {proc.communicate()[1][-2000:]!r}")
        time.sleep(0.02)
    proc.kill()
    proc.wait()


def test_resume_differs_without_saved_rng_state(tiny: Path, tmp_path: Path) -> None:
    """The bit-identity above is not luck: resuming mid-epoch with another RNG state gives other weights."""
    a, b = tmp_path / "a", tmp_path / "b"
    extra = ["--set", "train.epochs=1", "--set", "train.save_every=2"]
    run_cli("train", str(tiny), "--quiet", "--set", f"train.exp_dir={a}", *extra)
    # killed inside the second last.pt write (step 4): the first one, of step 2, is on disk
    _kill_inside_write(tiny, b, "last.pt@2", *extra)
    state = load_checkpoint(b / "last.pt")
    assert (state["run"]["epoch"], state["run"]["batch"], state["run"]["step"]) == (0, 2, 2), state["run"]
    state["rng"][0]["torch"] = torch.Generator().manual_seed(123).get_state()
    save_checkpoint(b / "last.pt", {k: v for k, v in state.items() if k != "format"})
    run_cli("train", str(tiny), "--quiet", "--set", f"train.exp_dir={b}", *extra)
    assert not _same(_weights(a / "last.pt"), _weights(b / "last.pt"))


def test_two_gloo_processes_under_torchrun(tiny: Path, tmp_path: Path) -> None:
    exp = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "asrkit",
            "train",
            str(tiny),
            "--quiet",
            "--set",
            f"train.exp_dir={exp}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "weights identical on all 2 ranks" in proc.stdout
    assert proc.stderr.count("best checkpoint:") == 1  # rank 0 only
    last = load_checkpoint(exp / "last.pt")
    assert last["world"] == 2 and len(last["rng"]) == 2
    # each rank drew other dropout masks and SpecAugment masks
    assert not torch.equal(last["rng"][0]["torch"], last["rng"][1]["torch"])
    rows = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    single = [json.loads(x) for x in _single_run_metrics(tiny, tmp_path)]
    # two ranks share each epoch's batches: half the optimizer steps of a single process
    assert rows[-1]["step"] <= single[-1]["step"] // 2 + 1
    hyp = run_cli(
        "decode",
        "--model",
        str(exp / "best.pt"),
        "--beam",
        "4",
        "--quiet",
        str(Path(load_recipe(tiny).data_dir) / "test.jsonl"),
    )
    assert len(hyp.stdout.splitlines()) == 4


def _single_run_metrics(tiny: Path, tmp_path: Path) -> list[str]:
    exp = tmp_path / "single"
    run_cli("train", str(tiny), "--quiet", "--set", f"train.exp_dir={exp}")
    return (exp / "metrics.jsonl").read_text().splitlines()


def _train_in_process(tiny: Path, exp: Path, *overrides: str) -> list[dict]:
    recipe = load_recipe(tiny, [f"train.exp_dir={exp}", *overrides])
    train(recipe, quiet=True)
    return [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]


def test_best_n_checkpoints_and_averaging(tiny: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    rows = _train_in_process(tiny, exp, "train.epochs=3", "train.keep_best=2", "train.average=2", "train.metric=loss")
    card = (exp / "MODEL_CARD.md").read_text()
    n_params = count_parameters(build_model(load_checkpoint(exp / "best.pt")["model_config"]))
    manifests = len(list(load_recipe(tiny).data_dir.glob("*.jsonl")))
    assert f"**{n_params:,} parameters.**" in card
    assert card.count("\n| ") == (1 + manifests) + (
        1 + len(rows)
    )  # the data table and the per-epoch results, each with a header
    kept = sorted(p.name for p in (exp / "checkpoints").glob("*.pt"))
    ranked = sorted(rows, key=lambda r: r["dev_loss"])
    assert kept == sorted(f"epoch-{r['epoch']}.pt" for r in ranked[:2])
    best = load_checkpoint(exp / "best.pt")
    assert best["epoch"] == ranked[0]["epoch"]
    a, b = (load_checkpoint(exp / "checkpoints" / f"epoch-{r['epoch']}.pt")["model"] for r in ranked[:2])
    avg = load_checkpoint(exp / "averaged.pt")["model"]
    for k in avg:
        torch.testing.assert_close(avg[k], (a[k] + b[k]) / 2, rtol=0, atol=1e-7)
    # the CLI gives the same average, and the averaged checkpoint decodes
    out = tmp_path / "avg.pt"
    run_cli("average", *(str(exp / "checkpoints" / f"epoch-{r['epoch']}.pt") for r in ranked[:2]), "--output", str(out))
    assert _same(load_checkpoint(out)["model"], avg)
    test = Path(load_recipe(tiny).data_dir) / "test.jsonl"
    assert len(run_cli("decode", "--model", str(out), "--quiet", str(test)).stdout.splitlines()) == 4


def test_average_refuses_checkpoints_of_other_models(tiny: Path, tmp_path: Path) -> None:
    _train_in_process(tiny, tmp_path / "a", "train.epochs=1")
    _train_in_process(tiny, tmp_path / "b", "train.epochs=1", "model.hidden=16")
    with pytest.raises(InputError, match="another model"):
        average_checkpoints([tmp_path / "a" / "best.pt", tmp_path / "b" / "best.pt"])
    res = run_cli(
        "average",
        str(tmp_path / "a" / "best.pt"),
        str(tmp_path / "b" / "best.pt"),
        "-o",
        str(tmp_path / "x.pt"),
        check=False,
    )
    assert res.returncode == 2 and "another model" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x.pt").exists()


def test_early_stopping_and_rerun_does_nothing(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    import asrkit.train.trainer as trainer

    real = trainer.evaluate
    # the dev loss stays where epoch 1 put it, exactly: no epoch improves on the first (a tiny learning rate only
    # nearly does that, and which way an ulp of float noise falls depends on the CPU)
    monkeypatch.setattr(trainer, "evaluate", lambda *a, **k: {**real(*a, **k), "loss": 1.0})
    exp = tmp_path / "exp"
    rows = _train_in_process(tiny, exp, "train.epochs=6", "train.early_stop=2", "train.metric=loss")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert load_checkpoint(exp / "last.pt")["run"]["done"] is True
    rows2 = _train_in_process(tiny, exp, "train.epochs=6", "train.early_stop=2", "train.metric=loss")
    assert rows2 == rows


def test_plateau_schedule_lowers_the_rate_when_dev_stalls(tiny: Path, tmp_path: Path) -> None:
    rows = _train_in_process(
        tiny,
        tmp_path / "exp",
        "train.epochs=4",
        "train.lr=1e-9",
        "train.schedule=plateau",
        "train.plateau_patience=0",
        "train.metric=loss",
    )
    # each row holds the rate the epoch trained with; epoch 1 sets the reference, then every epoch stalls
    assert [r["lr"] for r in rows] == pytest.approx([1e-9, 1e-9, 5e-10, 2.5e-10], rel=1e-6)


def test_gradient_accumulation_takes_one_step_per_group(tiny: Path, tmp_path: Path) -> None:
    one = _train_in_process(tiny, tmp_path / "one", "train.epochs=1")
    three = _train_in_process(tiny, tmp_path / "three", "train.epochs=1", "train.accum_steps=3")
    batches = one[0]["step"]
    assert three[0]["step"] == -(-batches // 3)
    assert not _same(_weights(tmp_path / "one" / "last.pt"), _weights(tmp_path / "three" / "last.pt"))


def test_non_finite_losses_are_skipped_and_counted(tiny: Path, tmp_path: Path) -> None:
    recipe = load_recipe(tiny)
    data = tmp_path / "data"
    shutil.copytree(recipe.data_dir, data)
    feats = dict(FeatureStore(data / "feats" / "train"))
    poisoned = sorted(feats)[:3]
    for k in poisoned:
        feats[k] = feats[k].clone()
        feats[k][0, 0] = float("nan")  # survives CMVN as NaN: that utterance's batch gets a NaN loss
    write_store(data / "feats" / "train", feats)
    exp = tmp_path / "exp"
    rows = _train_in_process(tiny, exp, "train.epochs=1", f"data.out_dir={data}")
    assert 1 <= rows[0]["skipped_batches"] <= 3
    w = _weights(exp / "last.pt")
    assert all(torch.isfinite(v).all() for v in w.values() if v.is_floating_point())
    assert math.isfinite(rows[0]["train_loss"]) and rows[0]["train_loss"] > 0


def test_resume_refuses_another_model_or_world_size(tiny: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    _train_in_process(tiny, exp, "train.epochs=1")
    with pytest.raises(InputError, match="another model"):
        _train_in_process(tiny, exp, "train.epochs=1", "model.hidden=8")
    with pytest.raises(InputError, match=r"train.epochs: 1 → 2.*--fresh"):
        _train_in_process(tiny, exp, "train.epochs=2")
    _train_in_process(tiny, exp, "train.epochs=1", "train.keep_best=1", "train.threads=2")  # harmless changes resume
    state = load_checkpoint(exp / "last.pt")
    state["world"] = 4
    save_checkpoint(exp / "last.pt", {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(InputError, match="4 processes"):
        _train_in_process(tiny, exp, "train.epochs=1")


def test_cpu_precision_fallback_and_length_filter_are_logged(tiny: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU fallback")
    sets = [f"train.exp_dir={tmp_path / 'exp'}", "train.epochs=1", "train.precision=fp16", "data.max_duration=1.0"]
    res = run_cli("train", str(tiny), *(x for s in sets for x in ("--set", s)))
    assert "train.precision fp16 needs CUDA; training in fp32" in res.stderr
    n = int(re.search(r"filtered: (\d+) longer than data.max_duration", res.stderr).group(1))
    utts = [json.loads(x) for x in (load_recipe(tiny).data_dir / "train.jsonl").read_text().splitlines()]
    assert n == sum(u["duration"] > 1.0 for u in utts) > 0


def test_amp_dtype_per_device_and_precision() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp_dtype("fp32", cpu) is None and amp_dtype("fp32", cuda) is None
    assert amp_dtype("fp16", cpu) is None  # no fp16 autocast on CPU: fp32, said in the log
    assert amp_dtype("fp16", cuda) == torch.float16 and amp_dtype("bf16", cuda) == torch.bfloat16
    assert amp_dtype("bf16", cpu) == (torch.bfloat16 if cpu_bf16_supported() else None)


def test_bf16_on_cpu_trains_in_bf16_where_native_else_fp32(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU path")
    import asrkit.train.trainer as trainer

    real, losses = trainer._loss, []

    def spy(*args):  # the trainer's own loss of its (autocast) forward
        loss = real(*args)
        losses.append(loss.item())
        return loss

    monkeypatch.setattr(trainer, "_loss", spy)
    first, epoch = {}, {}
    for precision in ("fp32", "bf16"):
        losses.clear()
        rows = _train_in_process(tiny, tmp_path / precision, "train.epochs=1", f"train.precision={precision}")
        first[precision], epoch[precision] = losses[0], rows[0]["train_loss"]
    fp_first, bf_first, bf_epoch = first["fp32"], first["bf16"], epoch["bf16"]
    same = _same(_weights(tmp_path / "fp32" / "last.pt"), _weights(tmp_path / "bf16" / "last.pt"))
    if cpu_bf16_supported():  # really ran in bf16: other weights, and another first loss
        assert not same and bf_first != fp_first and math.isfinite(bf_epoch)
        # the first step: the same seeded weights and batch, only autocast differs. bf16 keeps 8 significant bits
        # (2^-9 relative rounding per operand); 1% leaves room for a few of those, and not for a broken path.
        # Measured 1.5e-5 relative. (Later steps drift apart with the weights, so they are not compared.)
        assert abs(bf_first - fp_first) < 0.01 * fp_first, (bf_first, fp_first)
    else:
        assert same and bf_first == fp_first


@pytest.fixture(scope="module")
def isolated(tmp_path_factory) -> Path:
    """Isolated digits only (one speaker, indices 0-29): a 10-way keyword classification task."""
    tmp = tmp_path_factory.mktemp("isolated")
    return _prepared_jackson_recipe(
        tmp,
        30,
        {"per_split": {"train": 0, "dev": 0, "test": 0}},
        {"name": "bigru", "head": "classifier", "pool": "attention", "hidden": 32, "layers": 1, "subsample": 3},
        {"exp_dir": str(tmp / "exp"), "epochs": 8, "batch_seconds": 20, "lr": 0.005, "threads": 1},
    )


def test_classifier_head_trains_decodes_and_refuses_ctc_only_commands(isolated: Path) -> None:
    recipe = load_recipe(isolated)
    rows = _train_in_process(isolated, recipe.exp_dir)
    assert "dev_wer" not in rows[0] and all(0 <= r["dev_accuracy"] <= 1 for r in rows)
    # ten balanced classes: chance (and a constant model) is 10%. Measured over train.seed 0-3: best dev accuracy
    # 0.60-0.72, test 0.54-0.72; bounds 0.35 and 0.3 sit over 3 binomial sd (50 clips) below the worst of those
    assert max(r["dev_accuracy"] for r in rows) >= 0.35
    ckpt = load_checkpoint(recipe.exp_dir / "best.pt")
    words = ["eight", "five", "four", "nine", "one", "seven", "six", "three", "two", "zero"]
    assert ckpt["tokenizer"] == {"kind": "labels", "symbols": words}
    assert ckpt["model_config"]["head"] == "classifier"

    test = recipe.data_dir / "test_isolated.jsonl"
    refs = {json.loads(x)["id"]: json.loads(x)["text"] for x in test.read_text().splitlines()}
    out = run_cli("decode", "--model", str(recipe.exp_dir / "best.pt"), "--json", "--quiet", str(test)).stdout
    hyps = [json.loads(x) for x in out.splitlines()]
    assert [h["id"] for h in hyps] == list(refs) and len(hyps) == 50
    assert all(h["text"] in words and 0 < h["probability"] <= 1 for h in hyps)
    assert sum(h["text"] == refs[h["id"]] for h in hyps) / len(hyps) >= 0.3

    for args, needle in (
        (["align", "--model", str(recipe.exp_dir / "best.pt"), str(test)], "ctc head"),
        (["decode", "--model", str(recipe.exp_dir / "best.pt"), "--lexicon", str(test), str(test)], "classifier"),
    ):
        res = run_cli(*args, check=False)
        assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr


def test_frame_head_refuses_labels_that_do_not_match_frames(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="frame labels for"):
        _train_in_process(tiny, tmp_path / "exp", "model.head=frame")


def test_consistency_loss_is_zero_for_agreeing_views_and_pulls_each_towards_the_other() -> None:
    from asrkit.train.trainer import consistency_loss

    g = torch.Generator().manual_seed(0)
    a = torch.log_softmax(torch.randn(3, 7, 5, generator=g), -1)
    out_len, tl = torch.tensor([7, 5, 2]), torch.tensor([2, 1, 1])
    assert float(
        consistency_loss(torch.cat([a, a]), torch.cat([out_len, out_len]), torch.cat([tl, tl]))
    ) == pytest.approx(0.0, abs=1e-6)
    b = torch.log_softmax(torch.randn(3, 7, 5, generator=g), -1).requires_grad_()
    both = torch.cat([a, b])
    loss = consistency_loss(both, torch.cat([out_len, out_len]), torch.cat([tl, tl]))
    assert loss.item() > 0
    loss.backward()
    assert b.grad[2, 2:].abs().sum() == 0  # frames past an utterance's length do not count
    # a step along the gradient brings the views together
    moved = torch.log_softmax(b.detach() - 1.0 * b.grad, -1)
    assert (
        float(consistency_loss(torch.cat([a, moved]), torch.cat([out_len, out_len]), torch.cat([tl, tl]))) < loss.item()
    )


def test_consistency_training_sees_two_differently_augmented_views(tiny: Path, tmp_path: Path) -> None:
    from asrkit.data.loader import FeatureDataset
    from asrkit.data.manifest import Utterance
    from asrkit.features import ChannelResponse
    from asrkit.text import CharTokenizer

    utts = [Utterance(f"u{i}", None, 1.0, 16000, "one two"[: 3 + 4 * i], "s") for i in range(2)]
    feats = {u.id: torch.randn(30 + i, 40) for i, u in enumerate(utts)}
    ds = FeatureDataset(utts, feats, CharTokenizer.build(["one two"]), cmvn="none", channel=ChannelResponse(0.5, 40))
    b = ds.batch([0, 1], views=2)
    assert b.feats.shape[0] == 4 and b.ids == ["u0", "u1", "u0", "u1"]
    assert torch.equal(b.targets[:2], b.targets[2:]) and torch.equal(b.lengths[:2], b.lengths[2:])
    assert not torch.allclose(b.feats[:2], b.feats[2:])  # each view its own channel
    rows = _train_in_process(tiny, tmp_path / "cr", "train.epochs=1", "train.consistency=0.2")
    plain = _train_in_process(tiny, tmp_path / "plain", "train.epochs=1")
    assert math.isfinite(rows[0]["train_loss"]) and rows[0]["step"] == plain[0]["step"]  # same batches, two views each
    assert not _same(_weights(tmp_path / "cr" / "last.pt"), _weights(tmp_path / "plain" / "last.pt"))
