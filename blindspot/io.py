"""Result files: checked before computing, written atomically, durably and reproducibly.

Every writer goes through ``write_atomic``: the content is written to a new file beside the
destination (created with mode ``0o666`` less the umask, so ``0644`` under the usual umask 022),
flushed to disk (``fsync``), renamed over the destination (``os.replace`` is atomic on POSIX) and
the folder is synced, so an interrupted run leaves the previous file intact. JSON is strict: a
non-finite number is an error, never a bare ``NaN``. Reports keep their timings in a sibling file
(``report.json`` -> ``report.timings.json``) so that equal seeds give byte-identical reports.
Command-line tools check their output paths with ``check_output_file`` / ``check_output_folder``
before any computation.
"""

import json
import math
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path


def _check_writable_folder(option: str, folder: Path) -> None:
    """Refuse a folder in which no new file can be created (tried, so it also holds for root)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"{option} folder is not writable: {folder} ({error.strerror})") from None


def check_output_folder(option: str, path) -> Path:
    """Check that ``path`` is, or can be created as, a writable folder; return it as a ``Path``.

    ``option`` is the command-line option as the user typed it (for example ``--root``); the
    error is a one-line ``ValueError`` naming it.
    """
    if str(path) == "":
        raise ValueError(f"{option} must be a folder path, got ''")
    path = Path(path)
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} must be a folder, got {existing}, which is a file")
    _check_writable_folder(option, existing)
    return path


def check_output_file(option: str, path) -> Path:
    """Check that ``path`` names a new or regular file in an existing, writable folder; return it.

    Also checks the sibling ``timings_path(path)``; ``option`` is the command-line option as
    typed (for example ``--json``), named in the one-line ``ValueError``.
    """
    if str(path) == "":
        raise ValueError(f"{option} must be a file path, got ''")
    path = Path(path)
    for target in (path, timings_path(path)):
        if target.exists() and not target.is_file():
            raise ValueError(f"{option} must name a regular file, got {target}, which is not")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise ValueError(f"{option} folder does not exist: {folder}")
    _check_writable_folder(option, folder)
    return path


def write_atomic(path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a new file beside ``path``, fsync it, rename it over ``path``, sync the folder.

    The new file gets the permissions of an ordinary file (``0o666`` less the process umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}{path.suffix or '.tmp'}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(str(tmp))
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if os.name == "posix":
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8), atomically."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    write_atomic(path, write)


def _non_finite(obj, where: str = "") -> str | None:
    """Key path (``a.b[2]``) of the first non-finite float in a JSON-like object, or ``None``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the top level"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list | tuple) else ()
    for key, value in items:
        found = _non_finite(value, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}".lstrip("."))
        if found:
            return found
    return None


def json_text(obj, *, sort_keys: bool = False) -> str:
    """Strict JSON text of ``obj`` (indented, final newline); a NaN or infinity is a ``ValueError``.

    A non-finite number in a result means a computation went wrong; it is refused rather than
    written as the non-standard ``NaN`` (or silently replaced).
    """
    where = _non_finite(obj)
    if where:
        raise ValueError(f"refusing to write a non-finite number (NaN or inf) as JSON, at {where}")
    return json.dumps(obj, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"


def write_json_atomic(path, obj, *, sort_keys: bool = False) -> None:
    """Write ``obj`` as strict, indented JSON with a final newline, atomically (see ``json_text``)."""
    write_text_atomic(path, json_text(obj, sort_keys=sort_keys))


def timings_path(path) -> Path:
    """Sibling file of a report for its timings: ``report.json`` -> ``report.timings.json``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.timings{path.suffix or '.json'}")


def write_report(path, report: dict, timings: dict) -> None:
    """Write ``report`` to ``path`` and ``timings`` to ``timings_path(path)``, both strict JSON.

    The report holds no timing, so two runs with equal seeds on the same machine give
    byte-identical report files.
    """
    report_text, timings_text = json_text(report), json_text(timings)
    write_text_atomic(path, report_text)
    write_text_atomic(timings_path(path), timings_text)
