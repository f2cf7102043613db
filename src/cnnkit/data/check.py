"""``cnnkit data check DATA``: what a data set holds, read exactly as training would read it.

It names the task and layout found and why (and, when the layouts of several tasks match, which it
chose and how to choose another), the splits, the classes with their counts, image sizes, channels
and bit depths, mask values or annotation statistics, every problem with its file, and the command
to train. A data set training would refuse gives exit code 2, with the reason.

It knows no task by name: the caller (the CLI) resolves every registered task into a
:class:`TaskLayouts` (its layouts, suggested model and config fields) and passes them in. The facts
come from objects (the layout's :class:`~cnnkit.data.layout.Found`, the describer's
:class:`~cnnkit.data.describe.Report`); what the readers log meanwhile is shown in order, the
warnings counted as problems.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cnnkit.data.describe import Reading, Report, describe_found, image_summary, near_duplicates
from cnnkit.data.layout import FOLDERS, Layout, Match, choose, load, matches
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

__all__ = ["Reading", "TaskLayouts", "check_data", "guess", "image_summary", "near_duplicates"]

# data-reading flags some tasks take: the flag, and the config field a task must declare to take it
READING_FLAGS = (("--binary", "binary"), ("--ignore-index", "ignore_index"), ("--classes-file", "classes_file"))


@dataclass(frozen=True)
class TaskLayouts:
    """A task as ``data check`` needs it, resolved from its spec by the caller."""

    name: str
    layouts: tuple[Layout, ...]
    model: str = ""  # the spec's defaults["model"]: --model of the suggested command ("" leaves it out)
    config: tuple[str, ...] = ()  # the task's training options' names: which of READING_FLAGS it takes
    masks: bool | None = None  # the spec's args["masks"]: whether it needs masks (None: not about objects)


def guess(source: str, tasks: Sequence[TaskLayouts]) -> list[Match]:
    """Every task whose layouts detect ``source``, the chosen one first (see ``cnnkit.data.layout``:
    the most specific layout, then the task registered first); CnnkitError when none does."""
    root = Path(source)
    found = matches({t.name: t.layouts for t in tasks}, root)
    if found:
        return found
    if root.is_file():
        raise CnnkitError(f"{root}: not a data set file; pass a folder, a .csv, a COCO .json or a data.yaml")
    if not root.exists():
        raise CnnkitError(f"{root}: not found; pass an existing folder or file")
    raise CnnkitError(f"{root}: no task's layout matches; pass --task ({', '.join(t.name for t in tasks)}) to "
                      "read it as that task would and see what is missing")


def check_data(source: str, tasks: Sequence[TaskLayouts], task: str | None = None, val_split: float = 0.0,
               seed: int = 0, group: str = "", skip_bad: bool = False, binary: bool = False,
               ignore_index: int | None = None, classes_file: str = "") -> list[str]:
    """The report's lines; raises CnnkitError (after printing every problem found) when training would fail.
    ``tasks``: every registered task; ``task``: the one to read as (None: guessed). ``binary``,
    ``ignore_index``, ``classes_file``: as the task that declares them takes them."""
    by_name = {t.name: t for t in tasks}
    if task is not None and task not in by_name:
        raise CnnkitError(f"--task {task}: choose one of {', '.join(by_name)}")
    layout: Layout | None
    if task is None:
        found = guess(source, tasks)
        chosen, layout, why, others = by_name[found[0].task], found[0].layout, found[0].why, found[1:]
        # a catch-all reader (class folders, any images) is named only when nothing more specific matched
        others = [m for m in others if m.layout.rank > FOLDERS or m.layout.rank >= layout.rank]
    else:
        chosen, why, others = by_name[task], "given", []
        layout = choose(chosen.layouts, Path(source))[0] if chosen.layouts else None
    _refuse_foreign_flags(source, chosen, tasks, binary=binary, ignore_index=ignore_index is not None,
                          classes_file=bool(classes_file))
    if layout is None:
        raise CnnkitError(f"--task {chosen.name}: this task declares no data layouts; check its data by training")
    # the matched layout first: the loader reads with the first of the task's layouts that detects the data
    layouts = (layout, *(other for other in chosen.layouts if other is not layout))
    describe: Callable[..., Report] = load(layout.describe) if layout.describe else describe_found
    reading = Reading(val_split, seed, group, skip_bad, binary, ignore_index, classes_file)
    try:
        report, said = _collect(lambda: describe(source, reading, layouts))
    except CnnkitError as fault:
        raise _every_problem(fault, lambda r: describe(source, r, layouts), source, reading) from None
    if task is None and report.masks is not None and chosen.masks is not None and report.masks != chosen.masks:
        # boxes only where masks were expected (or the other way): the task that reads these annotations
        first = Match(chosen.name, layout, why)
        chosen = next((t for t in tasks if t.masks == report.masks), chosen)
        others = [m for m in (first, *others) if m.task != chosen.name] if others else []
    return _lines(source, chosen, why, others, reading, report, said)


def _refuse_foreign_flags(source: str, chosen: TaskLayouts, tasks: Sequence[TaskLayouts], **given: bool) -> None:
    for flag, field in READING_FLAGS:
        if given[field] and field not in chosen.config:
            taker = next((t.name for t in tasks if field in t.config), "another task")
            raise CnnkitError(f"{flag}: a flag of {taker} data, and {source} is read as {chosen.name} data; drop it, "
                              f"or pass --task {taker}")


def _lines(source: str, chosen: TaskLayouts, why: str, others: Sequence[Match], reading: Reading, report: Report,
           said: list[logging.LogRecord]) -> list[str]:
    found_line = report.found.line() if report.found is not None else ""
    notes = [r.getMessage() for r in said if r.levelno < logging.WARNING and r.getMessage() != found_line]
    problems = [r.getMessage() for r in said if r.levelno >= logging.WARNING]
    head = [found_line] if found_line else []
    task_lines = [f"task: {chosen.name} ({why})"]
    if others:
        task_lines.append(f"also matched: {', '.join(m.task for m in others)}; chose {chosen.name} (the most specific "
                          "layout; of equal ones, the task registered first); to read it as another, pass --task "
                          f"{others[0].task} (or another of those)")
        task_lines += [f"  {m.task}: {m.layout.name} layout ({m.why})" for m in others]
    flags = [*reading.flags(), *report.flags]
    command = ["train with: cnnkit train", chosen.name, "--data", source,
               *(["--model", chosen.model] if chosen.model else []), *flags]
    return [*head, *notes, *task_lines, *report.lines,
            f"problems: {len(problems)}" + ("" if problems else " (none)"), *[f"  {p}" for p in problems],
            " ".join(command)]


def _every_problem(fault: CnnkitError, describe: Callable[[Reading], Report], source: str, reading: Reading
                   ) -> CnnkitError:
    """Print every problem, not the first kind alone (training stops at that), and return the error to raise:
    the data is read again skipping what is bad, as --skip-bad would, so each later check runs too."""
    records, again = getattr(fault, "records", []), None
    if not reading.skip_bad:
        try:
            records = _collect(lambda: describe(replace(reading, skip_bad=True)))[1]
        except CnnkitError as e:
            records, again = getattr(e, "records", records), e
    said = [(r.levelno, r.getMessage()) for r in records]
    if not reading.skip_bad:  # this check skipped them, not the user's flag
        said = [(level, m.removesuffix("; skipped")) for level, m in said]
    for _, message in said:
        print(message)
    problems = [m.removeprefix("warning: ") for level, m in said if level >= logging.WARNING]
    if again is not None and str(again) != str(fault):
        print(f"and, with the files above skipped: {again}")
    if reading.skip_bad or again is not None or len(problems) < 2:
        return fault
    return CnnkitError(f"{len(problems)} problems in {source}, all listed above, the first: {problems[0]}; fix or "
                       "remove those files, or pass --skip-bad to skip them")


def _collect(describe: Callable[[], Report]) -> tuple[Report, list[logging.LogRecord]]:
    """``describe()``'s report, and what the readers logged meanwhile (kept from the console: the report
    says it once, in order)."""
    said, propagate, level = _Collector(), LOGGER.propagate, LOGGER.level
    LOGGER.addHandler(said)
    LOGGER.propagate = False
    LOGGER.setLevel(logging.INFO)
    try:
        return describe(), said.records
    except CnnkitError as e:
        e.records = said.records  # type: ignore[attr-defined]
        raise
    finally:
        LOGGER.removeHandler(said)
        LOGGER.propagate, LOGGER.level = propagate, level


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
