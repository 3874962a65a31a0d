"""Faults: SIGKILL inside a checkpoint write, Ctrl-C during training and prepare, a full disk during
prepare, two runs on one experiment dir, train on a missing or half-prepared data dir, unwritable outputs.

Every case checks the exit code, that stderr names the culprit in one line without a traceback, and that what
was on disk before is intact. The recipe is the smallest that trains: echo (generated one-hot strings, no audio)
with a GRU of 8 units, 2 epochs of 12 batches.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from asrkit import cli
from asrkit.data import featstore
from asrkit.data.featstore import FeatureStore
from asrkit.data.loader import FeatureDataset
from asrkit.errors import InputError
from asrkit.fsutil import RunLock
from asrkit.models.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
BATCHES = 12  # per epoch: 96 strings, 8 per batch


def _write_recipe(tmp: Path) -> Path:
    base = yaml.safe_load((ROOT / "recipes" / "echo.yaml").read_text())
    base["data"]["out_dir"] = str(tmp / "data")
    base["data"]["echo"].update(delay=2, length=8, per_split={"train": 96, "dev": 8})
    base["model"].update(hidden=8)
    base["train"].update(exp_dir=str(tmp / "exp"), epochs=2, batch_seconds=0.64, save_every=4, threads=1)
    p = tmp / "echo.yaml"
    p.write_text(yaml.safe_dump(base))
    return p


def _cli(capsys, *args: str) -> tuple[int, str]:
    """Run `asrkit ARGS` in this process (no interpreter start-up to pay); its exit code and stderr."""
    capsys.readouterr()
    rc = cli.main(list(args))
    return rc, capsys.readouterr().err


def _one_clean_line(err: str) -> str:
    """The single `asrkit:` line of stderr, after checking that nothing else (a traceback) is there."""
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("asrkit: "), err
    return lines[0]


@pytest.fixture(scope="module")
def echo(tmp_path_factory) -> dict:
    """The recipe, prepared, and an uninterrupted reference run (in this process; torch's thread count restored)."""
    tmp = tmp_path_factory.mktemp("faults")
    recipe = _write_recipe(tmp)
    threads = torch.get_num_threads()
    try:
        assert cli.main(["prepare", str(recipe), "--quiet"]) == 0
        assert cli.main(["train", str(recipe), "--quiet", "--set", f"train.exp_dir={tmp / 'ref'}"]) == 0
    finally:
        torch.set_num_threads(threads)
    return {"recipe": recipe, "data": tmp / "data", "ref": tmp / "ref"}


@pytest.fixture
def keep_threads():
    """Training in this process sets torch's thread count (train.threads): give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def sigint_default(keep_threads):
    """SIGINT with Python's default handler for the test (a shell that started us in the background ignores it)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def _assert_same_as_reference(exp: Path, ref: Path) -> None:
    for name in ("last.pt", "best.pt"):
        a, b = _weights(ref / name), _weights(exp / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (
            f"{name} differs from the uninterrupted run"
        )
    timing = ("seconds", "audio_seconds_per_second", "train_audio_seconds_per_second")

    def rows(p):
        return [
            {k: v for k, v in json.loads(x).items() if k not in timing}
            for x in (p / "metrics.jsonl").read_text().splitlines()
        ]

    assert rows(exp) == rows(ref)


def _train_args(echo: dict, exp: Path) -> list[str]:
    return ["train", str(echo["recipe"]), "--quiet", "--set", f"train.exp_dir={exp}"]


def _start_held(echo: dict, exp: Path, hold: str, folder: Path) -> subprocess.Popen:
    """`asrkit train` in a subprocess that stops inside the write `hold` (NAME@N); returns once it is there."""
    folder.mkdir()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "asrkit"), *_train_args(echo, exp)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ASRKIT_TEST_HOLD_WRITE": f"{hold}:{folder}"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal, whatever our shell did
    )
    deadline = time.time() + 120
    while not (folder / "ready").exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the run never reached the write of {hold}: {proc.communicate()[1][-2000:]}")
        time.sleep(0.02)
    return proc


def test_sigint_mid_epoch_saves_at_a_batch_boundary_and_the_rerun_is_bit_identical(
    echo, tmp_path, capsys, monkeypatch, sigint_default
):
    exp = tmp_path / "exp"
    calls = {"n": 0}
    batch = FeatureDataset.batch

    def ctrl_c_in_batch_6(self, indices, views=1):
        calls["n"] += 1
        if calls["n"] == 6:  # Ctrl-C while the 6th batch is being built: the step finishes, then the run stops
            os.kill(os.getpid(), signal.SIGINT)
        return batch(self, indices, views)

    monkeypatch.setattr(FeatureDataset, "batch", ctrl_c_in_batch_6)
    rc, err = _cli(capsys, *_train_args(echo, exp))
    assert rc == 130
    line = _one_clean_line(err)
    assert (
        f"interrupted at epoch 1 of 2, batch 6 of {BATCHES}" in line
        and str(exp / "last.pt") in line
        and "resume" in line
    )
    run = load_checkpoint(exp / "last.pt")["run"]
    assert (run["epoch"], run["batch"], run["step"]) == (
        0,
        6,
        6,
    )  # saved at the boundary, not at the periodic save of step 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the trainer put the handler back

    monkeypatch.setattr(FeatureDataset, "batch", batch)
    rc, err = _cli(capsys, *_train_args(echo, exp))
    assert rc == 0, err
    _assert_same_as_reference(exp, echo["ref"])


def test_second_sigint_while_saving_waits_for_the_save_then_stops(echo, tmp_path, capsys, monkeypatch, sigint_default):
    exp = tmp_path / "exp"
    real = torch.save

    def save_with_two_ctrl_c(obj, f, *a, **k):
        if "/.last.pt." in str(
            f
        ):  # the periodic save at step 4: Ctrl-C, and an impatient second one, in the middle of it
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save_with_two_ctrl_c)
    rc, err = _cli(capsys, *_train_args(echo, exp))
    monkeypatch.setattr(torch, "save", real)
    assert rc == 130
    line = _one_clean_line(err)
    assert f"interrupted at epoch 1 of 2, batch 4 of {BATCHES}" in line and str(exp / "last.pt") in line
    assert load_checkpoint(exp / "last.pt")["run"]["step"] == 4  # whole, and the state of the boundary it names
    assert not list(exp.rglob(".*.tmp"))

    rc, err = _cli(capsys, *_train_args(echo, exp))
    assert rc == 0, err
    _assert_same_as_reference(exp, echo["ref"])


def test_sigkill_inside_the_last_pt_write_and_a_second_run_on_the_same_dir(echo, tmp_path, capsys, sigint_default):
    exp, hold = tmp_path / "exp", tmp_path / "hold"
    proc = _start_held(
        echo, exp, "last.pt@2", hold
    )  # the second save (step 8) is half written; step 4's last.pt is on disk
    try:
        tmp = Path((hold / "ready").read_text())
        assert tmp.parent == exp and tmp.exists() and tmp.stat().st_size < (exp / "last.pt").stat().st_size

        # a second run on the same experiment dir refuses at once, names the holder, and touches nothing
        rc, err = _cli(capsys, *_train_args(echo, exp))
        assert rc == 2
        line = _one_clean_line(err)
        assert f"PID {proc.pid}" in line and "in use" in line and str(exp) in line
        assert tmp.exists(), "the refused run deleted the running one's temporary file"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    assert load_checkpoint(exp / "last.pt")["run"]["step"] == 4  # the previous checkpoint survived the kill
    rc, err = _cli(capsys, *_train_args(echo, exp))  # the dead run's lock does not block
    assert rc == 0, err
    assert not list(exp.rglob(".*.tmp"))
    _assert_same_as_reference(exp, echo["ref"])


def test_run_lock_names_the_holder_and_dies_with_it(tmp_path):
    lock = tmp_path / "exp" / "train.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from asrkit.fsutil import RunLock; RunLock({str(lock)!r}, 'x'); print('held', flush=True); input()",
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"in use by another run \\(PID {holder.pid}"):
            RunLock(lock, "experiment dir")
    finally:
        holder.kill()
        holder.wait()
    RunLock(lock, "experiment dir").release()  # the kernel dropped the dead holder's lock
    mine = RunLock(lock, "experiment dir")
    with pytest.raises(InputError, match=f"PID {os.getpid()}"):
        RunLock(lock, "experiment dir")
    mine.release()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file of a data dir by its content, less a preparation's build (.partial, kept to resume) and its lock."""

    def kept(p: Path) -> bool:
        rel = p.relative_to(folder)
        return p.is_file() and rel.parts[0] not in (".partial", ".prepare.lock")

    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if kept(p)
    }


def _made(snap: dict[str, str]) -> dict[str, str]:
    """What a preparation makes the same every time: manifests, vocabulary, inputs, feature shards (not torch.save's
    files, which hold their temporary name, nor the stamp and the normalised copies training adds)."""
    return {
        k: v
        for k, v in snap.items()
        if not k.endswith((".pt", "prepare.json")) and "/norm-" not in k and ".norm" not in k
    }


def _enospc(after: int, match: str, real, failed: list[Path]):
    """A writer `real(path_or_obj, obj_or_path)` that fails like a full disk on its `after`-th call on a path holding `match`."""
    seen = {"n": 0}

    def write(x, y, *a, **k):
        path = y if isinstance(y, (str, Path)) else getattr(x, "name", x)  # np.save may be given an open file
        if match in str(path):
            seen["n"] += 1
            if seen["n"] == after:
                failed.append(Path(path))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(x, y, *a, **k)

    return write


@pytest.mark.parametrize("where", ["feature cache", "corpus files"])
def test_disk_full_during_prepare_keeps_the_earlier_preparation(echo, tmp_path, capsys, monkeypatch, where):
    data = tmp_path / "data"
    shutil.copytree(echo["data"], data)
    before = _snapshot(data)
    # one process: the faults are injected into this one (spawned workers would not see them)
    args = ["prepare", str(echo["recipe"]), "--quiet", "--force", "--jobs", "1", "--set", f"data.out_dir={data}"]
    failed: list[Path] = []
    if where == "feature cache":  # np.save of dev's first feature shard, inside its atomic write
        monkeypatch.setattr(np, "save", _enospc(1, "/feats/dev/.shard-00000.npy.", np.save, failed))
    else:  # the 40th one-hot input the corpus module writes
        monkeypatch.setattr(np, "save", _enospc(40, ".npy", np.save, failed))
    rc, err = _cli(capsys, *args)
    monkeypatch.undo()
    assert rc == 1
    line = _one_clean_line(err)
    assert "no space left on device while writing" in line
    assert len(failed) == 1
    named = (
        data / ".partial" / "feats" / "dev" / "shard-00000.npy" if where == "feature cache" else failed[0]
    )  # not its temporary
    assert f"while writing {named};" in line
    assert _snapshot(data) == before, "the failed re-run changed the earlier complete preparation"
    # the build stays for the next run to go on from, and that run completes it
    assert (data / ".partial" / "manifests.json").is_file() == (where == "feature cache")
    rc, err = _cli(capsys, *[a for a in args if a != "--force"])  # --force would start the build over
    assert rc == 0, err
    assert not (data / ".partial").exists() and _made(_snapshot(data)) == _made(before)


def test_disk_full_on_a_real_tmpfs(echo, tmp_path, capsys):
    """The same on a real full file system (a small tmpfs), where torch reports ENOSPC as a RuntimeError."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {r.stderr.strip()[:200]}")
    try:
        data = mnt / "data"
        args = ["prepare", str(echo["recipe"]), "--quiet", "--set", f"data.out_dir={data}"]
        free = shutil.disk_usage(mnt).free
        assert _cli(capsys, *args)[0] == 0
        before = _snapshot(data)
        used = free - shutil.disk_usage(mnt).free
        # room for a rebuild's one-hot inputs and manifests, not for its features: np.save meets the full disk
        (mnt / "filler").write_bytes(b"\0" * (shutil.disk_usage(mnt).free - used + 32 * 1024))
        rc, err = _cli(capsys, *args, "--force")
        assert rc == 1
        line = _one_clean_line(err)
        assert "no space left on device while writing" in line and str(data) in line
        assert _snapshot(data) == before
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_train_refuses_a_missing_or_half_prepared_data_dir(echo, tmp_path, capsys, keep_threads):
    data = tmp_path / "data"
    args = [
        "train",
        str(echo["recipe"]),
        "--quiet",
        "--set",
        f"data.out_dir={data}",
        "--set",
        f"train.exp_dir={tmp_path / 'exp'}",
    ]

    rc, err = _cli(capsys, *args)  # never prepared
    assert rc == 2 and f"{data} is not prepared" in _one_clean_line(err)

    (data / ".partial").mkdir(parents=True)  # what a prepare killed before it finished leaves: still not prepared
    shutil.copy(echo["data"] / "train.jsonl", data / ".partial")
    rc, err = _cli(capsys, *args)
    assert rc == 2 and "is not prepared" in _one_clean_line(err)

    shutil.rmtree(data)
    shutil.copytree(echo["data"], data)
    shutil.rmtree(data / "feats" / "dev")  # prepared, then a folder lost
    rc, err = _cli(capsys, *args)
    assert rc == 2 and "dev.jsonl or its features are missing" in _one_clean_line(err)

    shutil.copytree(echo["data"] / "feats" / "dev", data / "feats" / "dev")
    shard = data / "feats" / "dev" / "shard-00000.npy"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # truncated
    rc, err = _cli(capsys, *args)
    assert rc == 2 and f"feature store {shard} is unreadable" in _one_clean_line(err)
    (data / "feats" / "dev" / "index.json").unlink()  # a split whose preparation never finished
    rc, err = _cli(capsys, *args)
    assert rc == 2 and f"feature store {data / 'feats' / 'dev'} is incomplete" in _one_clean_line(err)

    # the next prepare clears a killed run's leftovers and completes
    (data / ".partial").mkdir()
    (data / ".partial" / "junk").write_text("x")
    rc, err = _cli(capsys, "prepare", str(echo["recipe"]), "--quiet", "--force", "--set", f"data.out_dir={data}")
    assert rc == 0, err
    assert not (data / ".partial").exists()
    assert _made(_snapshot(data)) == _made(_snapshot(echo["data"]))  # manifests, vocabulary, inputs, feature shards
    for split in ("train", "dev"):
        a, b = FeatureStore(data / "feats" / split), FeatureStore(echo["data"] / "feats" / split)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_during_prepare_keeps_the_earlier_preparation(echo, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(echo["data"], data)
    before = _snapshot(data)

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(featstore, "_save_npy", ctrl_c)  # Ctrl-C while the first feature shard is written
    rc, err = _cli(
        capsys, "prepare", str(echo["recipe"]), "--quiet", "--force", "--jobs", "1", "--set", f"data.out_dir={data}"
    )
    monkeypatch.undo()
    assert rc == 130 and _one_clean_line(err) == "asrkit: interrupted"
    assert (
        _snapshot(data) == before
        and not list((data / ".partial" / "feats").rglob("shard-*"))
        and not list(data.rglob(".*.tmp"))
    )


def test_an_unwritable_output_is_one_line_naming_it(echo, tmp_path, capsys):
    from asrkit.fsutil import atomic_write_text

    (tmp_path / "file").write_text("x")
    cases = [
        (tmp_path / "file" / "out.hyp", f"{tmp_path / 'file'} is not a directory"),
        (tmp_path / "file" / "sub" / "out.hyp", "not a directory"),
        (tmp_path, "is a directory"),
    ]
    for bad, why in cases:
        with pytest.raises(InputError, match=f"cannot write {bad}: {why}"):
            atomic_write_text(bad, "text")
    assert not list(tmp_path.rglob(".*.tmp"))

    # `asrkit decode --output` at a directory: exit 2 and its name, not an IsADirectoryError about a temporary file
    out = tmp_path / "hyps"
    out.mkdir()
    rc, err = _cli(
        capsys,
        "decode",
        "--quiet",
        "--beam",
        "1",
        "--model",
        str(echo["ref"] / "best.pt"),
        "--output",
        str(out),
        str(echo["data"] / "dev.jsonl"),
    )
    line = _one_clean_line(
        err
    )  # decode checks its outputs before any work: "--output X is a directory; give a file path"
    assert rc == 2 and str(out) in line and "is a directory" in line
