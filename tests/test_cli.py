"""The command-line plumbing: help texts document every default; a result that cannot be written is an error."""

import argparse
import math

import pytest

from blindspot import claims, cli, probe, verify
from blindspot.evidence import Claim


def _defaults_documented(parser: argparse.ArgumentParser) -> None:
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if action.dest != "help":
            assert f"(default: {action.default})" in text, action.dest


def test_verify_help_documents_every_default_the_seed_range_and_the_timings_file():
    parser = verify._parser([c.id for c in claims.CLAIMS])
    _defaults_documented(parser)
    text = " ".join(parser.format_help().split())
    assert f"[0, 2^62 - 1 = {verify.SEED_HIGH}]" in text and "PATH-stem.timings.json" in text


def test_parser_raises_instead_of_exiting():
    parser = cli.Parser(prog="x")
    parser.add_argument("--n", type=cli.integer)
    with pytest.raises(cli.BadOption, match="argument --n: expected an integer, got '1.5'"):
        parser.parse_args(["--n", "1.5"])


def test_refuse_prints_one_line_and_returns_2(capsys):
    assert cli.refuse("prog", ValueError("--x must be\nan integer")) == 2
    assert capsys.readouterr().err == "prog: error: --x must be an integer\n"


def _raises(full, seed):
    raise RuntimeError("measurement broke")


def test_verify_does_not_write_a_report_holding_nan(tmp_path, capsys, monkeypatch):
    """A claim whose measurement raised has NaN evidence: the JSON is refused, loudly, exit status 1."""
    monkeypatch.setattr(claims, "CLAIMS", [Claim("PX", "statement", "hypotheses", _raises)])
    path = tmp_path / "r.json"
    assert verify.main(["--json", str(path)]) == 1
    err = capsys.readouterr().err
    assert "--json not written" in err and "non-finite" in err and "claims[0].evidence[0].measured" in err
    assert not path.exists() and not (tmp_path / "r.timings.json").exists()


def test_probe_does_not_write_a_report_holding_nan(tmp_path, capsys, monkeypatch):
    report = {"objectives": {"classification": {"rank_tolerance": math.nan}}}
    monkeypatch.setattr(probe, "run", lambda args: (report, {"seconds": 1.0}))
    monkeypatch.setattr(probe, "_print_table", lambda report, timings: None)
    path = tmp_path / "r.json"
    assert probe.main(["--json", str(path)]) == 1
    assert "non-finite" in capsys.readouterr().err and not path.exists()
