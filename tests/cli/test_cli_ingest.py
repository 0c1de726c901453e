"""``parley ingest``, ``docs``, ``collections`` and ``reindex`` on both backends.

Most tests drive the click commands in-process; the crash test runs the real ``parley``
command in a subprocess and kills it with SIGKILL halfway through.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, update

from engine import Engine, Settings
from engine.db import models as m
from tests.conftest import migrate
from tests.engine.test_ingest import copy_fixtures, index_state
from tui.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def db_url(settings: Settings, database_url: str) -> str:
    """A migrated database for the command line (PostgreSQL is never migrated implicitly)."""
    await migrate(settings)
    return database_url


def parley(url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", url, *args], input=stdin, catch_exceptions=False)


def test_ingest_prints_json_and_docs_list_shows_documents(db_url: str, tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    result = parley(db_url, "ingest", str(docs), "-c", "notes", "--tag", "survey",
                    "--exclude", "*.py", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["status"], out["indexed"], out["failed"], out["files_seen"]) == (
        "complete", 6, 0, 6)
    assert "indexed 6, unchanged 0, failed 0 of 6 files" in result.stderr
    listed = json.loads(parley(db_url, "docs", "list", "--json").stdout)["documents"]
    assert sorted(Path(d["path"]).name for d in listed) == [
        "guide.rst", "manual.adoc", "notes.md", "page.html", "readme.txt", "report.pdf"]
    assert all(d["tags"] == ["survey"] and d["status"] == "indexed" for d in listed)
    text_list = parley(db_url, "docs", "list", "-c", "notes")
    assert text_list.exit_code == 0 and str(docs / "notes.md") in text_list.stdout
    again = parley(db_url, "ingest", str(docs), "-c", "notes", "--exclude", "*.py")
    assert again.exit_code == 0 and again.stdout == ""  # quiet on a pipe: nothing on stdout
    assert "indexed 0, unchanged 6" in again.stderr
    collections = json.loads(parley(db_url, "collections", "list", "--json").stdout)
    assert [(c["name"], c["document_count"]) for c in collections["collections"]] == [
        ("notes", 6)]


def test_failed_files_are_summarised_and_listed_by_docs_errors(db_url: str,
                                                               tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    (docs / "empty.txt").write_text("")
    result = parley(db_url, "ingest", str(docs))
    assert result.exit_code == 0  # failures are reported, and the run completes
    assert "failed 2" in result.stderr
    assert f"{docs / 'empty.txt'}: empty file" in result.stderr
    errors = json.loads(parley(db_url, "docs", "errors", "--json").stdout)
    assert sorted(Path(e["path"]).name for e in errors["errors"]) == ["broken.pdf", "empty.txt"]
    as_text = parley(db_url, "docs", "errors")
    assert f"{docs / 'empty.txt'}\tempty file" in as_text.stdout
    runs = json.loads(parley(db_url, "docs", "runs", "--json").stdout)["runs"]
    assert runs[0]["status"] == "complete" and runs[0]["failed"] == 2
    failed_only = json.loads(parley(db_url, "docs", "list", "--status", "error", "--json").stdout)
    assert len(failed_only["documents"]) == 2


def test_docs_remove_asks_unless_yes(db_url: str, tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    parley(db_url, "ingest", str(docs / "notes.md"), str(docs / "guide.rst"))
    refused = parley(db_url, "docs", "remove", str(docs / "notes.md"))
    assert refused.exit_code == 2 and "--yes" in refused.stderr  # not a terminal: no prompt
    assert len(json.loads(parley(db_url, "docs", "list", "--json").stdout)["documents"]) == 2
    removed = parley(db_url, "docs", "remove", str(docs / "notes.md"), "--yes", "--json")
    assert removed.exit_code == 0
    assert [d["path"] for d in json.loads(removed.stdout)["removed"]] == [str(docs / "notes.md")]
    left = json.loads(parley(db_url, "docs", "list", "--json").stdout)["documents"]
    by_id = parley(db_url, "docs", "remove", str(left[0]["id"]), "--yes")
    assert by_id.exit_code == 0 and "removed 1 document" in by_id.stderr
    missing = parley(db_url, "docs", "remove", "4242", "--yes")
    assert missing.exit_code == 1 and "parley: error: no document matches 4242" in missing.stderr


def test_collections_commands(db_url: str) -> None:
    assert parley(db_url, "collections", "create", "papers").exit_code == 0
    duplicate = parley(db_url, "collections", "create", "papers")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.stderr
    assert parley(db_url, "collections", "rename", "papers", "articles").exit_code == 0
    listed = parley(db_url, "collections", "list")
    assert listed.stdout.startswith("articles\t0 documents")
    missing = parley(db_url, "collections", "remove", "papers", "--yes")
    assert missing.exit_code == 1 and "no collection named 'papers'" in missing.stderr
    assert parley(db_url, "collections", "remove", "articles", "--yes").exit_code == 0
    assert json.loads(parley(db_url, "collections", "list", "--json").stdout) == {
        "collections": []}


async def test_embedder_mismatch_names_reindex_and_reindex_fixes_it(
        db_url: str, tmp_path: Path, settings: Settings) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    await asyncio.to_thread(parley, db_url, "ingest", str(docs / "notes.md"), "-c", "notes")
    async with Engine(settings) as engine:
        assert engine.db is not None
        async with engine.db.write() as s:
            await s.execute(update(m.Collection).values(embedder="local/older-model"))
    refused = await asyncio.to_thread(parley, db_url, "ingest", str(docs / "guide.rst"),
                                      "-c", "notes")
    assert refused.exit_code == 1
    assert "parley reindex --embed --collection notes" in refused.stderr
    usage = await asyncio.to_thread(parley, db_url, "reindex", "-c", "notes")
    assert usage.exit_code == 2 and "--embed" in usage.stderr
    fixed = await asyncio.to_thread(parley, db_url, "reindex", "--embed", "-c", "notes",
                                    "--json")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["previous_embedder"] == "local/older-model"
    unchanged = await asyncio.to_thread(parley, db_url, "reindex", "--embed", "-c", "notes")
    assert "nothing to do" in unchanged.stderr
    again = await asyncio.to_thread(parley, db_url, "ingest", str(docs / "guide.rst"),
                                    "-c", "notes", "--json")
    assert json.loads(again.stdout)["indexed"] == 1


# -- crash safety -----------------------------------------------------------------------------
WORDS = ("river delta basalt glacier lichen moraine fjord estuary tundra canyon plateau "
         "aquifer sediment erosion monsoon savanna archipelago caldera geyser lagoon "
         "permafrost watershed floodplain escarpment").split()


def _write_corpus(folder: Path, files: int = 24, paragraphs: int = 4) -> None:
    rng = random.Random(7)
    folder.mkdir()
    for i in range(files):
        body = [f"# Survey {i}"]
        for p in range(paragraphs):
            body.append(f"## Part {p}\n\n" + " ".join(rng.choice(WORDS) for _ in range(70)) + ".")
        (folder / f"survey-{i:02d}.md").write_text("\n\n".join(body) + "\n")


def _spawn_ingest(url: str, folder: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_CONFIG"}
    return subprocess.Popen([sys.executable, "-m", "tui.cli", "--db", url, "ingest",
                             str(folder), "-c", "notes", "--json"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def _indexed(engine: Engine) -> int:
    assert engine.db is not None
    async with engine.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(m.Document)
                                  .where(m.Document.status == "indexed")) or 0)


async def test_killing_ingest_midway_and_rerunning_gives_the_same_index(
        db_url: str, tmp_path: Path, settings: Settings) -> None:
    folder = tmp_path / "corpus"
    _write_corpus(folder)
    async with Engine(settings) as engine:
        proc = _spawn_ingest(db_url, folder)
        killed_at = 0
        try:
            deadline = time.monotonic() + 300
            while proc.poll() is None and time.monotonic() < deadline:
                killed_at = await _indexed(engine)
                if killed_at >= 5:
                    proc.send_signal(signal.SIGKILL)
                    break
                await asyncio.sleep(0.02)
        finally:
            proc.kill()
            proc.communicate()
        assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        assert 5 <= await _indexed(engine) < 24
        runs = await engine.library.runs("notes")
        assert runs[0].status == "running"  # a killed process cannot say otherwise

        rerun = _spawn_ingest(db_url, folder)
        out, err = await asyncio.to_thread(rerun.communicate, timeout=600)
        assert rerun.returncode == 0, err
        result: dict[str, Any] = json.loads(out)
        assert result["indexed"] + result["skipped"] == 24 and result["skipped"] >= 5
        runs = await engine.library.runs("notes")
        assert [r.status for r in runs] == ["complete", "interrupted"]

        resumed = await index_state(engine, "notes", folder)
        reference = await engine.library.run_ingest([folder], collection="reference")
        assert reference.indexed == 24
        assert await index_state(engine, "reference", folder) == resumed
        # the same files in a second collection are stored once: linked, not chunked again
        assert (reference.linked, reference.chunks) == (24, 0)
