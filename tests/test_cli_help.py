"""The command line as a new user meets it: `eco --version`, help text on every option and
argument, the workspace always `-w` and optional (the most recent run), and the reference
documents under docs/ equal to what `eco getspec --markdown | --glossary | --methods` prints."""

import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import ecoraster
from ecoraster.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.startswith(f"ecoraster {ecoraster.__version__}")


def test_every_option_and_argument_has_help():
    root = typer.main.get_command(app)
    missing = [f"eco {' '.join(path)} {p.name}" for path, cmd in _commands(root) for p in cmd.params
               if not getattr(p, "help", None) and p.name not in ("help",)]
    assert missing == [], "options / arguments without help text: " + ", ".join(missing)


@pytest.mark.parametrize("command", [["catalogue"], ["gep-table"], ["parcels-to-postgis", "--sql-out", "x.sql"],
                                     ["parcel", "A"]])
def test_workspace_is_an_option_and_said_clearly_when_missing(command, tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)  # no ./outputs here
    try:
        res = runner.invoke(app, command)
    finally:
        os.chdir(cwd)
    assert res.exit_code == 1
    assert "pass -w DIR" in res.output, res.output


def test_workspace_defaults_to_the_most_recent_run(tmp_path):
    from ecoraster.query.workspace import latest_workspace

    old, new = tmp_path / "outputs" / "a" / "2019", tmp_path / "outputs" / "b"
    for i, d in enumerate((old, new)):
        d.mkdir(parents=True)
        (d / "run.json").write_text("{}", encoding="utf-8")
        os.utime(d / "run.json", (1_000_000 + i, 1_000_000 + i))
    assert latest_workspace(tmp_path) == new.resolve()


@pytest.mark.parametrize(("flag", "doc"), [("--markdown", "configuration.md"), ("--glossary", "glossary.md"),
                                           ("--methods", "methods.md")])
def test_reference_docs_are_current(flag, doc):
    res = runner.invoke(app, ["getspec", flag])
    assert res.exit_code == 0, res.output
    committed = (REPO / "docs" / doc).read_text(encoding="utf-8")
    assert res.stdout == committed, (f"docs/{doc} is out of date: run `eco getspec {flag} > docs/{doc}`")
