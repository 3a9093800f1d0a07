"""Atomic writes: a reader never sees a half-written result file.

Every writer goes through ``write_atomic``: the content is written to a temporary file in the
destination folder, then renamed over the destination (``os.replace`` is atomic on POSIX), so an
interrupted run leaves the previous file intact.
"""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8), atomically."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    write_atomic(path, write)


def write_json_atomic(path, obj, *, sort_keys: bool = False) -> None:
    """Write ``obj`` as indented JSON with a final newline, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")
