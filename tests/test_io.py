"""Result files: checked before computing, written atomically with the usual permissions, strict JSON."""

import json
import math
import os
import stat

import pytest

from blindspot import io


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_permissions_of_an_ordinary_file(tmp_path, umask, mask, mode):
    umask(mask)
    path = tmp_path / "out.txt"
    io.write_text_atomic(path, "x\n")
    assert stat.S_IMODE(path.stat().st_mode) == mode  # 0o666 less the umask, as open() gives


def test_replace_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out.json"
    io.write_text_atomic(path, "old\n")

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        io.write_atomic(path, fail)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: events.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}"))) or real_fsync(fd)
    )
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", None)) or real_replace(a, b))
    io.write_text_atomic(tmp_path / "out.txt", "x")
    assert events == [("fsync", False), ("replace", None), ("fsync", True)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_json_refuses_non_finite_numbers_and_names_where(tmp_path, bad):
    obj = {"a": [1.0, {"b": bad}]}
    with pytest.raises(ValueError, match=r"non-finite .* at a\[1\]\.b"):
        io.write_json_atomic(tmp_path / "r.json", obj)
    assert not (tmp_path / "r.json").exists()


def test_json_is_strict_and_ends_with_a_newline(tmp_path):
    io.write_json_atomic(tmp_path / "r.json", {"x": 1e-300, "y": [0.1, 2]})
    text = (tmp_path / "r.json").read_text()

    def refuse(name):
        raise AssertionError(name)

    assert text.endswith("}\n") and json.loads(text, parse_constant=refuse) == {"x": 1e-300, "y": [0.1, 2]}


@pytest.mark.parametrize(
    ("name", "sibling"),
    [("report.json", "report.timings.json"), ("out", "out.timings.json"), ("a.b.json", "a.b.timings.json")],
)
def test_timings_go_to_a_sibling_file(tmp_path, name, sibling):
    assert io.timings_path(tmp_path / name) == tmp_path / sibling
    io.write_report(tmp_path / name, {"rank": 3}, {"seconds": 1.5})
    assert json.loads((tmp_path / name).read_text()) == {"rank": 3}
    assert json.loads((tmp_path / sibling).read_text()) == {"seconds": 1.5}


def test_write_report_refuses_before_writing_either_file(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        io.write_report(tmp_path / "r.json", {"rank": 3}, {"seconds": math.nan})
    assert list(tmp_path.iterdir()) == []


def test_output_checks_accept_good_targets(tmp_path):
    assert io.check_output_file("--json", tmp_path / "r.json") == tmp_path / "r.json"
    assert io.check_output_folder("--root", tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert list(tmp_path.iterdir()) == []  # checking creates nothing


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (lambda tmp: "", "--json must be a file path, got ''"),
        (lambda tmp: tmp, "--json must name a regular file"),
        (lambda tmp: tmp / "missing" / "r.json", "--json folder does not exist"),
        (lambda tmp: "/proc/r.json", "--json folder is not writable: /proc"),
    ],
)
def test_output_file_check_refuses_bad_targets(tmp_path, target, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        io.check_output_file("--json", target(tmp_path))


def test_output_file_check_also_checks_the_timings_sibling(tmp_path):
    (tmp_path / "r.timings.json").mkdir()
    with pytest.raises(ValueError, match="--json must name a regular file, got .*r.timings.json"):
        io.check_output_file("--json", tmp_path / "r.json")


def test_output_folder_check_refuses_a_file_and_an_unwritable_place(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="--root must be a folder, got .*f, which is a file"):
        io.check_output_folder("--root", tmp_path / "f" / "sub")
    with pytest.raises(ValueError, match="--root folder is not writable: /proc"):
        io.check_output_folder("--root", "/proc/figures")
    with pytest.raises(ValueError, match="--root must be a folder path, got ''"):
        io.check_output_folder("--root", "")
