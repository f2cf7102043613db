"""Which files train, which validate, which test: one rule for every task.

Publishers name their splits differently (``train``/``val``/``test``, ``valid``, ``train2017``,
...). A ``test`` split is kept for testing: with no validation split, validation is held out of
``train`` (``--val-split``, fixed by ``--seed``) and ``test`` is scored once, at the end of
training, by ``best.pt`` (Ultralytics validates on ``test/`` when ``val/`` is missing; cnnkit does
not choose its best epoch on the test set). A data set without splits is split the same way.

Evaluation (``cnnkit val --split``) takes ``val`` by default: the validation folder, or else the
images held out at training, recomputed from the seed and fraction the checkpoint saved; when the
data is not the data set the checkpoint trained on, all of it. ``train``, ``test`` and ``all``
choose explicitly.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from cnnkit.data.request import EVAL_SPLITS, DataRequest
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

T = TypeVar("T")
U = TypeVar("U")

ROLE_NAMES = {
    "train": ("train", "training", "train2017", "trainval"),
    "val": ("val", "valid", "validation", "val2017", "dev"),
    "test": ("test", "testing", "test2017"),
}
MAX_EXACT_GROUPS = 12  # up to this many groups, the held-out groups are chosen from every subset


def role_of(name: str) -> str | None:
    """'train', 'val' or 'test' for a split folder's name (any letter case), else None."""
    lower = name.lower()
    return next((role for role, names in ROLE_NAMES.items() if lower in names), None)


def named_children(root: Path, suffix: str = "", is_split: Callable[[Path], bool] = Path.is_dir) -> dict[str, Path]:
    """{role: path} of ``root``'s children named like a split (plus ``suffix``: '.json')."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if suffix and not child.name.lower().endswith(suffix):
            continue
        role = role_of(child.name[: len(child.name) - len(suffix)] if suffix else child.name)
        if role and role not in found and is_split(child):
            found[role] = child
    return found


def hold_out(names: Sequence[str], fraction: float, seed: int, origin: str, group: str = "",
             strata: np.ndarray | None = None, least: int = 1, whole_classes: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) of the images held out for validation, the one rule of every task: whole
    groups named by ``group`` in each file's path (``--val-group``), else whole classes (``whole_classes``:
    recognition validates on identities it never trained on), else ``fraction`` of each class
    (``strata``: the labels), else a random ``fraction`` (at least ``least`` when there are twice as
    many images); each fixed by ``seed``. ``names``: the files, ``origin``: the data, for messages."""
    if group:
        return group_hold_out(names, fraction, seed, group, origin)
    if whole_classes and strata is not None:
        return hold_out_groups([str(s) for s in strata], fraction, seed, origin, "classes")
    if strata is not None:
        return stratified_split(strata, fraction, seed)
    return random_hold_out(len(names), fraction, seed, origin, least)


def random_hold_out(n: int, fraction: float, seed: int, origin: str, least: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): a fixed random ``fraction`` of ``n`` held out (same seed, same split); at least
    ``least`` of them when ``n`` is twice that (pretraining compares two images of a batch)."""
    n_val = max(1, int(round(n * fraction)))
    if n_val >= n:
        raise CnnkitError(f"{origin}: {n} image(s) are too few to hold out {fraction:.0%} for validation; "
                          "add images, or give a val/ folder")
    n_val = max(n_val, min(least, n // 2))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) holding out ``fraction`` of every class, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(members) * fraction)) if len(members) > 1 else 0
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def group_regex(pattern: str) -> re.Pattern:
    """``--val-group``'s pattern compiled; refused in one line when it is not a regular expression."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise CnnkitError(f"--val-group {pattern!r}: not a regular expression ({e}); fix it") from None


def group_hold_out(names: Sequence[str], fraction: float, seed: int, pattern: str, origin: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): whole groups held out, as scikit-learn's GroupShuffleSplit does, so that
    no sequence, patient or camera is on both sides. Groups are named by ``pattern`` (a regular
    expression; its first group, else its whole match) in each file's name, or in its path when the
    name does not match (a folder per patient); groups are drawn in a
    set whose images come nearest ``fraction`` of all (see ``_choose_groups``; ``seed`` breaks ties)."""
    regex = group_regex(pattern)
    groups = []
    for name in names:
        match = regex.search(Path(str(name)).name) or regex.search(str(name))  # the file name, else its path
        if match is None:
            raise CnnkitError(f"{name}: --val-group {pattern!r} finds no group in this file's path; give a "
                              "pattern every file matches, e.g. '^([^_]+)_' for '0001TP_000123.png'")
        groups.append(match.group(1) if match.groups() else match.group(0))
    if len(set(groups)) < 2:
        raise CnnkitError(f"{origin}: --val-group {pattern!r} finds one group ({groups[0]}); at least two are "
                          "needed to hold one out")
    return hold_out_groups(groups, fraction, seed, origin, "groups")


def hold_out_groups(groups: Sequence[str], fraction: float, seed: int, origin: str, what: str = "groups"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): the images of whole ``groups`` (one name per image) held out, in a set whose
    images come nearest ``fraction`` of all (``_choose_groups``; ``seed`` breaks ties); ``what`` they are,
    for messages."""
    unique = sorted(set(groups))
    if len(unique) < 2:
        raise CnnkitError(f"{origin}: {len(unique)} {what[:-1] if len(unique) == 1 else what} found; at least two are "
                          "needed to hold one out: add more")
    sizes = Counter(groups)
    held = _choose_groups([str(g) for g in np.random.default_rng(seed).permutation(unique)], sizes,
                          fraction * len(groups))
    val = np.array([i for i, g in enumerate(groups) if g in held], np.int64)
    train = np.array([i for i, g in enumerate(groups) if g not in held], np.int64)
    named = "" if what == "classes" else f" ({', '.join(held[:8])}{' ...' if len(held) > 8 else ''})"  # ids, not names
    LOGGER.info("validation holds out %d of %d %s whole%s: %d images", len(held), len(unique), what, named, len(val))
    return train, val


def _choose_groups(order: list[str], sizes: Counter, target: float) -> list[str]:
    """Groups whose images come nearest ``target``, never all: every subset when there are few
    (ties go to the earlier groups of the seeded ``order``), else greedily in that order."""
    n = len(order)
    if n <= MAX_EXACT_GROUPS:
        best = min(range(1, 2**n - 1), key=lambda m: (abs(sum(sizes[order[i]] for i in range(n) if m >> i & 1)
                                                          - target), m))
        return [order[i] for i in range(n) if best >> i & 1]
    held: list[str] = []
    count = 0
    for g in order:
        if abs(count + sizes[g] - target) < abs(count - target) and len(held) < n - 1:
            held.append(g)
            count += sizes[g]
    return held or [min(order, key=lambda g: sizes[g])]  # every group is too large: the smallest


def relative_names(keys, origin: Path) -> list[str]:
    """Files named relative to the data root, so that a moved, renamed or differently spelled folder
    still fingerprints the same (a file outside the root: its name)."""
    root = Path(origin).resolve()
    out = []
    for k in keys:
        path = Path(str(k)).resolve()
        out.append(str(path.relative_to(root)) if path.is_relative_to(root) else path.name)
    return out


def digest(names: Sequence[Any]) -> str:
    """A short fingerprint of a list of files, to tell whether a split is the one trained with."""
    return hashlib.sha1("\n".join(sorted(str(n) for n in names)).encode()).hexdigest()[:16]


@dataclass
class SplitPlan:
    """How a data set was split for training; saved in the checkpoint's meta as ``split``."""

    data: str  # resolved data path
    val_from: str  # 'folder' or 'held out'
    fraction: float
    seed: int
    val_count: int
    val_digest: str
    test_count: int = 0
    group: str = ""  # --val-group: validation held out by whole groups
    files_digest: str = ""  # every file of the data set, relative to its root: the same data, wherever it is
    val_hashes: str = ""  # held-out files, 4 bytes of each name's hash (base64): found again in an edited copy

    def to_meta(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(kw_only=True)
class Splits(Generic[T]):
    """The parts of a data set, one shape for every task: ``train`` (None when evaluating), ``val`` (the
    split scored when evaluating), ``test`` (scored once by best.pt after training, never used to
    choose) and ``plan`` (how val was chosen, saved in the model's card; training only). Every loader
    returns one, its task's own fields (classes, channels, ...) beside these."""

    train: T | None = None
    val: T
    test: T | None = None
    plan: SplitPlan | None = None

    def parts(self) -> dict[str, T]:
        """{'train', 'val', 'test': part}, in that order, of the parts present."""
        return {k: v for k, v in (("train", self.train), ("val", self.val), ("test", self.test)) if v is not None}

    def map(self, convert: Callable[[str, T], U]) -> Splits[U]:
        """The same splits and plan, each part ``convert(name, part)``."""
        parts = {k: convert(k, v) for k, v in self.parts().items()}
        return Splits(train=parts.get("train"), val=parts["val"], test=parts.get("test"), plan=self.plan)


def resolve_splits(named: dict[str, list], request: DataRequest, *, origin: Path, fraction: float,
                   names: dict[str, str] | None = None, key: Callable[[Any], Any] = str,
                   strata: Callable[[Any], int] | None = None) -> Splits[list]:
    """Assign the found splits to their parts, holding validation out by ``hold_out``'s rule.

    ``named``: {'train'|'val'|'test'|'all': items}; ``request``: the switch (``split``: None when
    training, else the evaluation split), the seed, ``--val-group`` and the model's saved plan
    (``trained``: evaluation holds out by its fraction, seed and groups); ``fraction``: the fraction
    held out (the request's, or the task's default); ``names``: {split: folder name} for messages;
    ``key``: an item's file name (groups, digests); ``strata``: an item's class, to hold out the same
    fraction of each. Returns train, val (and test) when training, with the plan; else val alone.
    """
    if request.val_group:  # refused even where a val/ folder leaves it unused: a typo is not silently kept
        group_regex(request.val_group)
    names = names or {}
    label = {k: names.get(k, k) for k in named}
    if request.training:
        hold = _holder(origin, fraction, request.seed, request.val_group, key, strata, request.whole_classes)
        return _train_split(named, hold, origin, fraction, request, label, key)
    saved = request.trained or {}
    hold = _holder(origin, saved.get("fraction", fraction), saved.get("seed", request.seed),
                   saved.get("group", request.val_group), key, strata, request.whole_classes)
    return Splits(val=_eval_split(named, hold, origin, str(request.split), request.trained, label, key))


def _holder(origin: Path, fraction: float, seed: int, group: str, key: Callable[[Any], Any],
            strata: Callable[[Any], int] | None, whole_classes: bool = False) -> Callable[[list], tuple[list, list]]:
    """items -> (train, val) items, by ``hold_out``."""
    def hold(items: list) -> tuple[list, list]:
        labels = None if strata is None else np.array([strata(i) for i in items], np.int64)
        train, val = hold_out([str(key(i)) for i in items], fraction, seed, str(origin), group, labels,
                              whole_classes=whole_classes)
        return [items[i] for i in train], [items[i] for i in val]
    return hold


def _train_split(named: dict[str, list], hold: Callable[[list], tuple[list, list]], origin: Path, fraction: float,
                 request: DataRequest, label: dict[str, str], key: Callable[[Any], Any]) -> Splits[list]:
    seed, group = request.seed, request.val_group
    base = "train" if "train" in named else "all" if "all" in named else None
    if base is None:
        raise CnnkitError(f"{origin}: found {', '.join(label.values())} but no training split; "
                          "add a train/ folder (or put all images in one folder)")
    if "val" in named:
        out, how = {"train": named[base], "val": named["val"]}, f"val = {label['val']} ({len(named['val'])})"
    else:
        train, val = hold(named[base])
        out = {"train": train, "val": val}
        whole = f", whole groups by {group!r}" if group else ", whole classes" if request.whole_classes else ""
        how = f"val = {fraction:.0%} held out of {label[base]} (seed {seed}{whole}; {len(val)})"
    parts = [f"train = {label[base]} ({len(out['train'])})", how]
    if "test" in named:
        out["test"] = named["test"]
        parts.append(f"test = {label['test']} ({len(named['test'])}; scored once at the end by best.pt, "
                     "never used to choose)")
    LOGGER.info("splits: %s", ", ".join(parts))
    held = relative_names((key(i) for i in out["val"]), origin)
    plan = SplitPlan(str(Path(origin).resolve()), "folder" if "val" in named else "held out", fraction, seed,
                     len(out["val"]), digest(held), len(named.get("test", [])), group,
                     _files_digest(named, origin, key), "" if "val" in named else name_hashes(held))
    return Splits(train=out["train"], val=out["val"], test=out.get("test"), plan=plan)


def _short_hashes(names: Sequence[str]) -> list[bytes]:
    return [hashlib.sha1(n.encode()).digest()[:4] for n in names]


def name_hashes(names: Sequence[str]) -> str:
    """4 bytes of each file name's SHA-1, base64: 16 KB for 3,000 held-out images; a chance match of a
    training file is about 1 in a million for that many."""
    return base64.b64encode(b"".join(sorted(_short_hashes(names)))).decode()


def held_out_found(items: list, origin: Path, trained: Mapping[str, Any], key) -> list | None:
    """The items whose names the checkpoint held out, when the data is an edited copy of the trained data (at
    least half of those held out are still there); None when it is not, or the checkpoint saved no names."""
    saved = base64.b64decode(trained.get("val_hashes") or "")
    if not saved:
        return None
    held = {saved[i:i + 4] for i in range(0, len(saved), 4)}
    found = [i for i, h in zip(items, _short_hashes(relative_names((key(i) for i in items), origin))) if h in held]
    if found and len(found) < len(held) / 2:  # too few to score on their own, too many to ignore
        LOGGER.warning("warning: %s: %d of the %d images held out at training are here, beside %d others; much of "
                       "this data may be what the model trained on, so its scores flatter the model", origin,
                       len(found), len(held), len(items) - len(found))
    return found if found and len(found) >= len(held) / 2 else None


def _files_digest(named: dict[str, list], origin: Path, key) -> str:
    return digest(relative_names((key(i) for items in named.values() for i in items), origin))


def _eval_split(named: dict[str, list], hold: Callable[[list], tuple[list, list]], origin: Path, request: str,
                trained: Mapping[str, Any] | None, label: dict[str, str], key) -> list:
    if request not in EVAL_SPLITS:
        raise CnnkitError(f"--split {request}: choose one of {', '.join(EVAL_SPLITS)}")
    if request == "all":
        items = [i for k in ("train", "all", "val", "test") for i in named.get(k, [])]
        LOGGER.info("scoring all %d images of %s (every split)", len(items), origin)
        return items
    if request in ("val", "auto") and "val" in named:
        LOGGER.info("scoring %s (%d images)", label["val"], len(named["val"]))
        return named["val"]
    if request == "train" and "val" in named and "train" in named:  # a val folder: all of train/ trained
        LOGGER.info("scoring %s (%d images, all trained on)", label["train"], len(named["train"]))
        return named["train"]
    if request == "test":
        if "test" not in named:
            raise CnnkitError(f"--split test: {origin} has no test split; found {', '.join(label.values())}")
        LOGGER.info("scoring %s (%d images)", label["test"], len(named["test"]))
        return named["test"]
    base = "train" if "train" in named else "all"
    if base not in named:
        raise CnnkitError(f"--split {request}: {origin} has only {', '.join(label.values())}; "
                          "pass --split test or --split all")
    same = trained is not None and (trained.get("data") == str(Path(origin).resolve())
                                    or trained.get("files_digest") == _files_digest(named, origin, key))
    if request != "train" and trained and trained.get("files_digest") != _files_digest(named, origin, key):
        found = held_out_found(named[base], origin, trained, key)
        if found is not None:  # an edited copy: a recomputed split would hold out images that trained
            LOGGER.warning("warning: %s: the files differ from those the model was trained with; scoring the %d "
                           "images held out at training that are still here (of %d); the other %d are new or "
                           "were trained on, so they are not scored", origin, len(found), trained.get("val_count", 0),
                           len(named[base]) - len(found))
            return found
    if request == "auto" and "val" not in named and not same and base == "all":
        LOGGER.info("scoring all %d images of %s (not the data set this model trained on; --split val would hold "
                    "out the training fraction)", len(named[base]), origin)
        return named[base]
    train, val = hold(named[base])
    chosen = train if request == "train" else val
    what = "training images" if request == "train" else "held-out validation images"
    LOGGER.info("scoring the %d %s of %s (split recomputed from the seed and fraction saved with the model)",
                len(chosen), what, label[base])
    if request != "train" and trained and trained.get("val_from") == "held out" and same and (
            trained.get("val_digest") != digest(relative_names((key(i) for i in chosen), origin))):
        LOGGER.warning("warning: %s: the files differ from those the model was trained with, so the held-out "
                       "images are not the ones held out then; some may have been trained on", origin)
    return chosen
