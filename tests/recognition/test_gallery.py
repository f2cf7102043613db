"""Gallery: a persistent, pickle-free file of enrolled identities, searched by cosine distance."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnkit.errors import CnnkitError
from cnnkit.recognition.gallery import Gallery
from cnnkit.recognition.gallery_file import FIELDS

DIM = 16
FINGERPRINT = "abcdef0123456789abcdef"


def make(threshold: float | None = 0.4, seed: int = 0, identities: int = 3) -> Gallery:
    """A gallery of ``identities`` people with 1, 2, 3, ... vectors each."""
    rng = np.random.default_rng(seed)
    gallery = Gallery.new(FINGERPRINT, "resnet18", DIM, threshold)
    for i in range(identities):
        gallery.add(f"person{i}", rng.normal(size=(i + 1, DIM)), [f"person{i}/{j}.jpg" for j in range(i + 1)])
    return gallery


def test_round_trip(tmp_path):
    gallery = make()
    gallery.add("Zoë 李", np.ones(DIM), ["zoë.png"])
    path = gallery.save(tmp_path / "people.npz")
    assert path == tmp_path / "people.npz" and gallery.path == path
    with np.load(path, allow_pickle=False) as archive:  # plain arrays only
        assert sorted(archive.files) == sorted(FIELDS)
        header = json.loads(str(archive["header"]))
        assert archive["vectors"].dtype == np.float32 and archive["identity"].dtype == np.int32
        assert archive["names"].dtype.kind == "U" and archive["sources"].dtype.kind == "U"
    assert header["format"] == "cnnkit-gallery" and header["version"] == 1 and header["dim"] == DIM
    loaded = Gallery.load(path)
    assert loaded.identities() == gallery.identities() == [("Zoë 李", 1), ("person0", 1), ("person1", 2),
                                                            ("person2", 3)]
    assert (loaded.fingerprint, loaded.model, loaded.dim, loaded.threshold) == (FINGERPRINT, "resnet18", DIM, 0.4)
    assert (loaded.created, loaded.updated) == (gallery.created, gallery.updated)
    assert loaded.names == gallery.names and len(loaded) == len(gallery) == 7
    queries = np.random.default_rng(1).normal(size=(4, DIM))
    assert loaded.search(queries, k=3) == gallery.search(queries, k=3)


def test_saves_the_name_as_given(tmp_path):
    make().save(tmp_path / "people")  # no suffix: none is added
    assert [p.name for p in tmp_path.iterdir()] == ["people"]
    assert Gallery.load(tmp_path / "people").identities()[0] == ("person0", 1)
    empty = Gallery.new(FINGERPRINT, "resnet18", DIM, None)
    empty.save(tmp_path / "empty.npz")
    assert len(Gallery.load(tmp_path / "empty.npz")) == 0 and Gallery.load(tmp_path / "empty.npz").threshold is None


def rewrite(path: Path, **changes) -> None:
    """Write the gallery at ``path`` again with some arrays changed (None drops one)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays.update(changes)
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in arrays.items() if v is not None})
    path.write_bytes(buf.getvalue())


def header_with(path: Path, **changes) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["header"]))
    return np.array(json.dumps({**header, **changes}))


@pytest.mark.parametrize("case, message", [
    ("pickled", "pickle"),
    ("text", "not an .npz"),
    ("truncated", "not an .npz|damaged"),
    ("unknown field", "unknown fields 'extra'"),
    ("unknown header field", "unknown header fields 'colour'"),
    ("missing field", "damaged.*'sources'"),
    ("missing header field", "damaged.*no header field 'created'"),
    ("newer", "version 2.*upgrade cnnkit"),
    ("not a gallery", "not a cnnkit gallery"),
    ("bad identity", "damaged"),
    ("wrong dim", "damaged"),
])
def test_refuses_bad_files(tmp_path, case, message):
    path = make().save(tmp_path / "g.npz")
    if case == "pickled":
        rewrite(path, names=np.array(["a", "b", "c"], dtype=object))
    elif case == "text":
        path.write_text("hello")
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:-200])
    elif case == "unknown field":
        rewrite(path, extra=np.zeros(3))
    elif case == "unknown header field":
        rewrite(path, header=header_with(path, colour="red"))
    elif case == "missing field":
        rewrite(path, sources=None)
    elif case == "missing header field":
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(str(archive["header"]))
        rewrite(path, header=np.array(json.dumps({k: v for k, v in header.items() if k != "created"})))
    elif case == "newer":
        rewrite(path, header=header_with(path, version=2))
    elif case == "not a gallery":
        rewrite(path, header=header_with(path, format="something-else"))
    elif case == "bad identity":
        rewrite(path, identity=np.array([0, 1, 1, 5, 2, 2], np.int32))
    elif case == "wrong dim":
        rewrite(path, header=header_with(path, dim=DIM + 1))
    with pytest.raises(CnnkitError, match=message) as e:
        Gallery.load(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CnnkitError, match=r"no such gallery; create it with `cnnkit gallery add .*--weights W --name"):
        Gallery.load(tmp_path / "nope.npz")
    with pytest.raises(CnnkitError, match="a folder"):
        Gallery.load(tmp_path)


def test_add_remove_list():
    gallery = make(identities=4)
    assert gallery.identities() == [("person0", 1), ("person1", 2), ("person2", 3), ("person3", 4)]
    assert gallery.add("person1", np.ones((2, DIM)), ["x.jpg", "y.jpg"]) == 4
    assert gallery.remove("person1") == 4 and len(gallery) == 8
    assert gallery.names == ["person0", "person2", "person3"]
    assert gallery.identities() == [("person0", 1), ("person2", 3), ("person3", 4)]
    # the rows of the identities after the removed one still point at their names
    for name, count in gallery.identities():
        rows = np.flatnonzero(gallery._identity == gallery.names.index(name))
        assert len(rows) == count and all(gallery._sources[r].startswith(name) for r in rows)
    with pytest.raises(CnnkitError, match="no identity named 'person9'.*Did you mean 'person"):
        gallery.remove("person9")
    with pytest.raises(CnnkitError, match="Enrolled: 'person0'"):
        gallery.remove("xyz")


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_refuses_blank_names(name):
    with pytest.raises(CnnkitError, match="empty or blank"):
        make().add(name, np.ones(DIM), ["a.jpg"])


def test_refuses_wrong_vectors(tmp_path):
    gallery = make()
    gallery.path = tmp_path / "g.npz"
    with pytest.raises(CnnkitError, match=rf"g.npz: embeddings of shape \(2, 15\).*{DIM}-number embeddings of resnet"):
        gallery.add("x", np.ones((2, DIM - 1)), ["a", "b"])
    with pytest.raises(CnnkitError, match="queries of shape"):
        gallery.search(np.ones(DIM + 1))
    bad = np.ones((2, DIM))
    bad[1, 3] = np.nan
    with pytest.raises(CnnkitError, match="embedding of b.jpg is not finite"):
        gallery.add("x", bad, ["a.jpg", "b.jpg"])
    with pytest.raises(CnnkitError, match="embedding of z.jpg is all zeros"):
        gallery.add("x", np.zeros(DIM), ["z.jpg"])
    assert len(gallery) == 6 and "x" not in gallery.names


def test_fingerprint_mismatch(tmp_path):
    path = make().save(tmp_path / "g.npz")
    gallery = Gallery.load(path)
    gallery.check_model(FINGERPRINT, "resnet18", path)  # the model that built it
    with pytest.raises(CnnkitError) as e:
        gallery.check_model("0000", "vit_b_16", path)
    assert str(e.value).startswith(f"{path}: made by another model (resnet18, weights abcdef012345), not this one "
                                   f"(vit_b_16, weights 0000); a checkpoint of another epoch or run is another model")
    with pytest.raises(CnnkitError, match="made by another model"):
        Gallery.open_or_new(path, "0000", "vit_b_16", DIM, None)
    assert len(Gallery.open_or_new(path, FINGERPRINT, "resnet18", DIM, None)) == 6
    fresh = Gallery.open_or_new(tmp_path / "new.npz", FINGERPRINT, "resnet18", DIM, 0.3)
    assert len(fresh) == 0 and fresh.path == tmp_path / "new.npz" and fresh.threshold == 0.3


def test_empty_gallery_search(tmp_path):
    gallery = Gallery.new(FINGERPRINT, "resnet18", DIM, None)
    with pytest.raises(CnnkitError, match="the gallery: no identities enrolled; add some with `cnnkit gallery add"):
        gallery.search(np.ones(DIM))
    gallery = make(identities=1)
    gallery.save(tmp_path / "g.npz")
    gallery.remove("person0")
    with pytest.raises(CnnkitError, match=f"{tmp_path / 'g.npz'}: no identities enrolled"):
        gallery.search(np.ones(DIM))


def brute_force(gallery: Gallery, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    d = 1.0 - q @ gallery._vectors.astype(np.float64).T
    per_name = {n: d[:, gallery._identity == i].min(axis=1) for i, n in enumerate(gallery.names)}
    return [sorted(((n, float(v[j])) for n, v in per_name.items()), key=lambda t: t[1])[:k]
            for j in range(len(queries))]


@pytest.fixture
def crowded() -> tuple[Gallery, np.ndarray]:
    """20 identities of 1 to 6 vectors, and one of 40 vectors about the queries: the nearest 40 rows of each
    query are all that identity's."""
    rng = np.random.default_rng(3)
    gallery = Gallery.new(FINGERPRINT, "resnet18", DIM, 0.9)
    for i in range(20):
        n = 1 + i % 6
        gallery.add(f"id{i:02d}", rng.normal(size=(n, DIM)), [f"{i}_{j}.jpg" for j in range(n)])
    centre = rng.normal(size=DIM)
    gallery.add("crowd", centre + 0.01 * rng.normal(size=(40, DIM)), [f"crowd{j}.jpg" for j in range(40)])
    queries = centre + 0.05 * rng.normal(size=(6, DIM))
    return gallery, queries


@pytest.mark.parametrize("k", [1, 5, 21, 50])
def test_search_matches_brute_force(crowded, k):
    gallery, queries = crowded
    gallery.use_faiss = False
    got = gallery.search(queries, k=k)
    want = brute_force(gallery, queries, k)
    _, rows = gallery._search_index().search(queries, 40)
    assert (gallery._identity[rows] == gallery.names.index("crowd")).all()  # as the fixture means
    assert [len(hits) for hits in got] == [min(k, 21)] * len(queries)
    for hits, expected in zip(got, want):
        assert hits[0]["name"] == "crowd"
        assert [h["name"] for h in hits] == [n for n, _ in expected]
        np.testing.assert_allclose([h["distance"] for h in hits], [d for _, d in expected], atol=1e-5)
        assert all(isinstance(h["distance"], float) and h["match"] == (h["distance"] <= 0.9) for h in hits)


def test_faiss_and_exact_search_agree(crowded):
    pytest.importorskip("faiss")
    gallery, queries = crowded
    gallery.use_faiss = False
    exact = gallery.search(queries, k=8)
    gallery.use_faiss = True
    fast = gallery.search(queries, k=8)
    assert gallery._index is not None and gallery._index.backend == "faiss"
    for a, b in zip(exact, fast):
        assert [h["name"] for h in a] == [h["name"] for h in b]
        np.testing.assert_allclose([h["distance"] for h in a], [h["distance"] for h in b], atol=1e-5)


def test_index_follows_changes():
    gallery = make()
    probe = np.random.default_rng(9).normal(size=DIM)
    assert gallery.search(probe, k=1)[0][0]["name"] != "probe"
    gallery.add("probe", probe, ["probe.jpg"])
    hit = gallery.search(probe, k=1)[0][0]
    assert hit["name"] == "probe" and hit["distance"] == pytest.approx(0, abs=1e-6)
    gallery.remove("probe")
    assert all(h["name"] != "probe" for h in gallery.search(probe, k=10)[0])


def test_threshold():
    gallery = make(threshold=None)
    probe = np.ones(DIM)
    assert all(h["match"] is None for h in gallery.search(probe, k=3)[0])
    hits = gallery.search(probe, k=3, threshold=2.0)
    assert all(h["match"] is True for h in hits[0])
    gallery.threshold = 0.0
    assert all(h["match"] is False for h in gallery.search(probe, k=3)[0])
    for bad in (-0.1, 2.5, float("nan")):
        with pytest.raises(CnnkitError, match="not a cosine distance"):
            gallery.search(probe, threshold=bad)
    with pytest.raises(CnnkitError, match="at least 1"):
        gallery.search(probe, k=0)


def test_unwritable_place_is_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CnnkitError, match=f"^{blocker / 'g.npz'}: cannot write the gallery"):
        make().save(blocker / "g.npz")
    with pytest.raises(CnnkitError, match="cannot write the gallery"):
        make().save(tmp_path)  # a folder


def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root writes anywhere
            pytest.skip("this user can write to a read-only folder")
        with pytest.raises(CnnkitError, match="cannot write the gallery"):
            make().save(folder / "g.npz")
        assert not list(folder.iterdir())
    finally:
        folder.chmod(0o700)


def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = make().save(tmp_path / "g.npz")
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CnnkitError, match="No space left on device"):
        make(seed=5).save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["g.npz"]
    assert zipfile.is_zipfile(path)


def test_names_that_would_look_like_others_are_refused(tmp_path):
    """Regression (user trial): 'bob\nalice' broke `gallery list` and search.csv; 'yaleB11 ' listed as yaleB11."""
    gallery = make()
    for name in ("bob\nalice", "yaleB11 ", " x", "a\tb"):
        with pytest.raises(CnnkitError, match="spaces around it or control characters"):
            gallery.add(name, np.ones((1, DIM)), ["a.jpg"])
    assert gallery.add("Zoë Ångström", np.ones((1, DIM)), ["a.jpg"]) == 1


def test_a_checkpoint_given_as_the_gallery_is_named_as_one(tmp_path):
    import torch

    path = tmp_path / "best.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(CnnkitError, match="a PyTorch checkpoint .best.pt\\?., not a gallery; pass it to --weights"):
        Gallery.load(path)
