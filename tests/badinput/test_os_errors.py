"""OS-level failures end with one line naming the path and exit 3 (README "Exit codes"), also with
--json; SIGTERM unwinds like Ctrl-C (staging removed, exit 143)."""

from __future__ import annotations

import errno
import json
import sys

import pytest

import importlib

cli_main = importlib.import_module("ecoraster.cli.main")


def _eco(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["eco", *args])
    with pytest.raises(SystemExit) as info:
        cli_main.main()
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.mark.parametrize("code,text", [(errno.EROFS, "read-only file system"),
                                       (errno.ENOSPC, "no space left on device"),
                                       (errno.EACCES, "permission denied")])
def test_os_error_is_one_line_naming_the_path(mini, tmp_path, monkeypatch, capsys, code, text):
    from ecoraster.pipeline.workspace import Workspace

    ws = tmp_path / "ws"

    def refuse(self):
        raise OSError(code, "os says no", str(self.root))

    monkeypatch.setattr(Workspace, "new_staging", refuse)
    rc, out, err = _eco(monkeypatch, capsys, "run", str(mini / "run.yaml"), "-w", str(ws), "-q")
    assert rc == 3 and err.strip() == f"error: {text}: {ws}" and "Traceback" not in err
    rc, out, err = _eco(monkeypatch, capsys, "run", str(mini / "run.yaml"), "-w", str(ws), "--json")
    payload = json.loads(out)
    assert rc == 3 and payload["ok"] is False and payload["path"] == str(ws) and text in payload["message"]


def test_unwritable_cache_dir(mini, tmp_path, monkeypatch, capsys):
    """`eco zonal --cache-dir` on a path that is a file: one line naming it."""
    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a folder")
    rc, out, err = _eco(monkeypatch, capsys, "zonal", str(mini / "p.tif"), "--zones", str(mini / "zones.gpkg"),
                        "--id", "zid", "--cache-dir", str(blocker / "sub"))
    assert rc in (1, 3) and "Traceback" not in err and str(blocker) in err and len(err.strip().splitlines()) == 1


def test_sigterm_unwinds_and_removes_staging(mini, tmp_path, monkeypatch, capsys):
    import os
    import signal

    from ecoraster.pipeline import stages

    ws = tmp_path / "ws"
    real = stages.run_service

    def killed(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # handled by eco's handler → Terminated

    monkeypatch.setattr(stages, "run_service", killed)
    old = signal.getsignal(signal.SIGTERM)
    try:
        rc, out, err = _eco(monkeypatch, capsys, "run", str(mini / "run.yaml"), "-w", str(ws), "-q")
    finally:
        signal.signal(signal.SIGTERM, old)
    assert rc == 143 and "terminated (SIGTERM)" in err
    assert not ws.exists() or not [p for p in ws.iterdir() if p.name not in (".cache", ".flow.lock")]  # staging removed, nothing published
