"""Files a killed process must not leave half-written, and the JSONL rule for reading what it left.

One writer, "stage then rename": a file or folder is written under a hidden staging name next to its
target (same folder, so the same file system) and then renamed onto the target with ``os.replace``,
which is atomic on POSIX: a reader sees the old target or the new one, never a partial one. A folder
that replaces a folder takes two renames (the old one is moved aside first): between them the target
is briefly absent, but the old folder is never deleted before the new one is in place.
Checkpoints (``scalingrl.checkpoint``), run records (``scalingrl.runlog``) and the quickstart model
cache (``scalingrl.quickstart``) all write through it.

- ``staged(target)``: a context manager for a one-process write (yields the staging path; renames on
  a clean exit, removes the staging path on an error).
- ``stage``/``publish``/``discard``: the same steps apart, for a write several processes share (a
  data-parallel checkpoint: rank 0 stages, every rank writes into the folder, rank 0 publishes).

One reader rule for append-only JSONL (metrics.jsonl, selection_log.jsonl), ``read_jsonl``: a last
line that does not parse is a write cut short by a kill and is skipped; a line that does not parse
anywhere else is damage, and raises with the file and line number instead of dropping records.

Left out on purpose: fsync of folders and cross-file-system moves (targets and staging paths are
always siblings).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["stage", "publish", "discard", "staged", "read_jsonl", "PARTIAL_SUFFIX"]

PARTIAL_SUFFIX = ".partial"  # staging paths are ".<target name>[.<unique>].partial" next to the target


def stage(target: str | Path, *, directory: bool = False, unique: bool = True) -> Path:
    """A fresh staging path next to ``target``: an empty folder (``directory``) or a path to write a file to.

    ``unique=True`` adds a random part so that concurrent writers of one target (two runs building
    the same cached model) never share a staging path; ``unique=False`` gives the fixed name
    ``.<name>.partial`` that several processes can compute (a stale one is removed first).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = f".{uuid.uuid4().hex[:12]}" if unique else ""
    staging = target.with_name(f".{target.name}{tag}{PARTIAL_SUFFIX}")
    discard(staging)
    if directory:
        staging.mkdir()
    return staging


def publish(staging: str | Path, target: str | Path) -> Path:
    """Rename ``staging`` onto ``target`` (replacing a file, or a folder, already there); returns ``target``.

    A staged file is flushed to disk (fsync) before the rename, so the rename never publishes a file
    whose bytes are still only in the page cache.

    Raises:
        FileNotFoundError: ``staging`` does not exist.
    """
    staging, target = Path(staging), Path(target)
    if not staging.exists():
        raise FileNotFoundError(f"nothing staged at {staging} to publish as {target}")
    if staging.is_file():
        with open(staging, "rb") as handle:
            os.fsync(handle.fileno())
    if target.is_dir() and not target.is_symlink():
        # os.replace cannot replace a non-empty folder: move the old one aside first (a kill between the two
        # renames leaves it there, under a hidden name, rather than deleting it before the new one is in place)
        retired = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.old")
        os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
        return target
    os.replace(staging, target)
    return target


def discard(staging: str | Path) -> None:
    """Remove a staging file or folder (nothing if it is absent)."""
    staging = Path(staging)
    if staging.is_dir() and not staging.is_symlink():
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.unlink(missing_ok=True)


@contextlib.contextmanager
def staged(target: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """``with staged(path) as staging: write(staging)``: ``staging`` becomes ``path`` when the block ends cleanly.

    On an exception (including KeyboardInterrupt) the staging path is removed and ``target`` is left
    as it was.
    """
    staging = stage(target, directory=directory)
    try:
        yield staging
    except BaseException:
        discard(staging)
        raise
    publish(staging, target)


def read_jsonl(path: str | Path) -> list[Any]:
    """The records of a JSONL file, in order; a torn last line (a killed writer) is skipped.

    Blank lines are ignored.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a line other than the last does not parse (names the file and the line number).
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break  # cut short by a kill: the record was never complete
            raise ValueError(
                f"{path}:{number} is not valid JSON ({error.msg}) and is not the last line: "
                "the file is damaged, not just cut short"
            ) from error
    return records
