import pytest
import torch

from cnnkit.engine.checkpoint import atomic_write_bytes, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from cnnkit.errors import CnnkitError

META = {"task": "classify", "model": "basic_cnn", "classes": ["a", "b"], "num_classes": 2, "in_chans": 1,
        "mean": [0.5], "std": [0.2]}


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    state = {"task": "classify", "model": {"w": torch.ones(2)}, "meta": META, "rng": rng_state()}
    save_checkpoint(state, tmp_path / "c.pt")
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(loaded["model"]["w"], torch.ones(2))


def test_rng_state_restores_every_generator():
    import random

    import numpy as np

    state = rng_state()
    a = (torch.rand(3), random.random(), np.random.rand())
    set_rng_state(state)
    b = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(CnnkitError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CnnkitError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CnnkitError, match="other.pt: not a cnnkit checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"task": "classify", "model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CnnkitError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_outputs_take_the_umask_not_mkstemps_0600(tmp_path):
    import os
    import stat

    from cnnkit.files import FILE_MODE

    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"x")
    assert stat.S_IMODE(target.stat().st_mode) == FILE_MODE
    mask = os.umask(0)
    os.umask(mask)
    assert FILE_MODE == 0o666 & ~mask  # readable by the group and others under the usual 022


def test_stale_temporaries_are_removed(tmp_path):
    from cnnkit.files import remove_stale_temporaries

    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"half")
    (tmp_path / "last.pt").write_bytes(b"whole")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".last.pt.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_non_finite_weights_are_never_written_nor_loaded(tmp_path):
    state = {"task": "classify", "model": {"w": torch.tensor([1.0, float("nan")])}, "meta": META, "epoch": 3}
    with pytest.raises(CnnkitError, match="NaN or infinite.*epoch 3"):
        save_checkpoint(state, tmp_path / "best.pt")
    assert not list(tmp_path.iterdir())
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CnnkitError, match="bad.pt: holds NaN or infinite weights"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({**state, "model": {"w": torch.ones(2)}, "meta": {}}, tmp_path / "nometa.pt")
    with pytest.raises(CnnkitError, match="nometa.pt: not a complete cnnkit checkpoint .its meta lacks task, model"):
        load_checkpoint(tmp_path / "nometa.pt")  # regression: a traceback in val, export and serve


def test_an_unreadable_checkpoint_says_why_in_words(tmp_path):
    """Regression: "not a readable checkpoint (KeyError)" named the exception, not the cause."""
    (tmp_path / "text.pt").write_text("hello\n")
    with pytest.raises(CnnkitError, match=r"text.pt: not a readable checkpoint \(not a PyTorch file\)"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")
    with pytest.raises(CnnkitError, match=r"holds pickled objects, which cnnkit never unpickles"):
        load_checkpoint(tmp_path / "pickled.pt")
