"""Ingestion on both backends: indexing, re-runs, pruning, bad input, runs, usage, cancel."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from engine import Engine
from engine.db import models as m
from engine.db.search_backend import for_backend
from engine.errors import EmbedderMismatch
from engine.types import IngestProgress, IngestResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
EDGE_PDFS = Path(__file__).resolve().parents[2].parent / "shared" / "bench-data" / \
    "docs-corpus" / "pdf-edge-cases"


def copy_fixtures(dest: Path) -> Path:
    """A writable copy of the fixture documents."""
    shutil.copytree(FIXTURES, dest)
    return dest


async def index_state(engine: Engine, collection: str, root: Path | None = None) -> dict[str, Any]:
    """Everything that makes up a collection's index, comparable between two runs.

    Asserts the invariants on the way: one vector per chunk in the live generation, no
    vector without its chunk, the SQLite vec0 and FTS5 tables in sync with their sources.
    """
    assert engine.db is not None
    async with engine.db.read() as s:
        coll = await s.scalar(select(m.Collection).where(m.Collection.name == collection,
                                                         m.Collection.user_id == engine.user_id))
        assert coll is not None
        cid, gen = coll.id, coll.vector_generation
        docs = (await s.scalars(select(m.Document).where(m.Document.collection_id == cid))).all()
        paths = {d.id: _rel(d.source_path, root) for d in docs}
        chunks = (await s.scalars(select(m.Chunk).where(m.Chunk.chunk_set_id.in_(
            select(m.Document.chunk_set_id).where(m.Document.collection_id == cid))))).all()
        n_vectors = await s.scalar(select(func.count()).select_from(m.ChunkEmbedding).where(
            m.ChunkEmbedding.collection_id == cid, m.ChunkEmbedding.generation == gen))
        with_vector = await s.scalar(select(func.count(func.distinct(m.ChunkEmbedding.chunk_id)))
                                     .where(m.ChunkEmbedding.collection_id == cid,
                                            m.ChunkEmbedding.generation == gen))
        orphans = await s.scalar(text(
            "SELECT count(*) FROM chunk_embeddings e LEFT JOIN chunks c ON c.id = e.chunk_id "
            "WHERE c.id IS NULL"))
        assert orphans == 0
        assert n_vectors == with_vector == len(chunks), "every chunk has exactly one vector"
        if engine.db.backend == "sqlite":
            from engine.db.sqlite_search import vec_table

            in_vec0 = await s.scalar(text(f"SELECT count(*) FROM {vec_table(cid, gen)}"))
            assert in_vec0 == len(chunks)
            # raises if the keyword index differs from the chunk table in any way
            await s.execute(text(
                "INSERT INTO chunk_fts(chunk_fts, rank) VALUES('integrity-check', 1)"))
    held = []
    for d in docs:
        mine = [c for c in chunks if c.chunk_set_id == d.chunk_set_id]
        assert d.chunk_count == len(mine) or d.status == "error"
        assert sorted(c.chunk_index for c in mine) == list(range(len(mine)))
        held += [(paths[d.id], c) for c in mine]
    return {
        "docs": {paths[d.id]: (d.status, d.error, d.chunk_count, d.content_hash) for d in docs},
        "chunks": sorted((path, c.chunk_index, c.text, c.content_hash, c.page,
                          c.line_start, c.line_end, c.char_start, c.char_end) for path, c in held),
    }


def _rel(path: str, root: Path | None) -> str:
    return os.path.relpath(path, root) if root is not None else path


async def ingest_all(engine: Engine, paths: list[Path | str], **options: Any) -> tuple[
        IngestResult, list[IngestProgress]]:
    events = [e async for e in engine.library.ingest(paths, **options)]
    result = events[-1]
    assert isinstance(result, IngestResult)
    return result, [e for e in events if isinstance(e, IngestProgress)]


async def test_ingest_indexes_every_kind_with_spans_pages_and_vectors(engine: Engine,
                                                                      tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    result, progress = await ingest_all(engine, [docs], collection="notes")
    assert (result.status, result.failed, result.indexed, result.files_seen) == (
        "complete", 0, 7, 7)
    assert [p.done for p in progress] == list(range(1, 8))
    assert {p.outcome for p in progress} == {"indexed"}
    state = await index_state(engine, "notes", docs)
    assert set(state["docs"]) == {"notes.md", "guide.rst", "manual.adoc", "page.html",
                                  "telescope.py", "readme.txt", "report.pdf"}
    assert all(status == "indexed" for status, *_ in state["docs"].values())
    assert result.chunks == len(state["chunks"])
    assert {c[4] for c in state["chunks"] if c[0] == "report.pdf"} == {1, 2, 3, 4}  # pages
    source = (docs / "notes.md").read_text()
    for path, _, body, _, _, line_start, line_end, start, end in state["chunks"]:
        if path == "notes.md":  # spans point at the exact text and lines of the file
            assert source[start:end] == body
            assert source.count("\n", 0, start) + 1 == line_start
            assert source.count("\n", 0, end - 1) + 1 == line_end
    html = " ".join(c[2] for c in state["chunks"] if c[0] == "page.html")
    assert "brood nest" in html and "tracking" not in html
    info = await engine.library.collection("notes")
    assert (info.embedder, info.dimension, info.document_count) == (
        engine.embedder().name, engine.embedder().dimension, 7)
    assert engine.db is not None
    search = for_backend(engine.db.backend)
    async with engine.db.read() as s:
        hits = await search.keyword(s, [info.id], "turquoise", 5)
        query = await engine.embedder().embed_query("why is the glacier lake water blue-green")
        near = await search.knn(s, info.id, 1, query, 3)
    async with engine.db.read() as s:
        found = await s.get(m.Chunk, hits[0][0])
        nearest = await s.get(m.Chunk, near[0][0])
    assert found is not None and "turquoise" in found.text
    assert nearest is not None and "rock flour" in nearest.text


async def test_a_large_run_refreshes_the_statistics_keyword_search_uses(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL BM25 learns which words are common from the planner statistics of
    chunks.tsv: a run that writes many chunks refreshes them (here: any run)."""
    from engine.ingest import pipeline

    monkeypatch.setattr(pipeline, "REFRESH_STATISTICS_AFTER", 1)
    assert engine.db is not None
    stats = ("SELECT count(*) FROM pg_stats WHERE tablename = 'chunks' AND attname = 'tsv' "
             "AND most_common_elems IS NOT NULL")
    if engine.db.backend == "postgresql":
        async with engine.db.read() as s:
            assert await s.scalar(text(stats)) == 0
    result, _ = await ingest_all(engine, [copy_fixtures(tmp_path / "docs")], collection="n")
    assert result.status == "complete"
    if engine.db.backend == "postgresql":
        async with engine.db.read() as s:
            assert await s.scalar(text(stats)) == 1


async def test_rerun_skips_unchanged_replaces_changed_and_adds_new(engine: Engine,
                                                                  tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    await ingest_all(engine, [docs], collection="notes")
    before = await index_state(engine, "notes", docs)
    again, _ = await ingest_all(engine, [docs], collection="notes")
    assert (again.indexed, again.skipped, again.chunks) == (0, 7, 0)
    assert await index_state(engine, "notes", docs) == before

    (docs / "readme.txt").write_text("Sourdough starter care\n\nFeed it spelt flour now.\n")
    (docs / "new.md").write_text("# Kites\n\nA delta kite flies in light wind.\n")
    third, progress = await ingest_all(engine, [docs], collection="notes")
    assert (third.indexed, third.skipped, third.failed) == (2, 6, 0)
    assert {p.path for p in progress if p.outcome == "indexed"} == {
        str(docs / "readme.txt"), str(docs / "new.md")}
    after = await index_state(engine, "notes", docs)
    readme = [c[2] for c in after["chunks"] if c[0] == "readme.txt"]
    assert readme == ["Sourdough starter care\n\nFeed it spelt flour now."]
    assert not any("rye flour" in c[2] for c in after["chunks"])  # old chunks are gone
    assert after["docs"]["notes.md"] == before["docs"]["notes.md"]


async def test_force_reindexes_unchanged_files(engine: Engine, tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    await ingest_all(engine, [docs / "notes.md"], collection="notes")
    before = await index_state(engine, "notes", docs)
    forced, _ = await ingest_all(engine, [docs / "notes.md"], collection="notes", force=True)
    assert (forced.indexed, forced.skipped) == (1, 0)
    assert await index_state(engine, "notes", docs) == before


async def test_prune_removes_only_vanished_files_under_the_targets(engine: Engine,
                                                                  tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.md").write_text("# Elsewhere\n\nThis file is outside the pruned folder.\n")
    await ingest_all(engine, [docs, other], collection="notes")
    (docs / "guide.rst").unlink()
    (other / "keep.md").unlink()  # gone too, but not under the target of the next run

    plain, _ = await ingest_all(engine, [docs], collection="notes")
    assert plain.pruned == 0
    assert "guide.rst" in (await index_state(engine, "notes", docs))["docs"]

    pruned, progress = await ingest_all(engine, [docs], collection="notes", prune=True)
    assert pruned.pruned == 1
    assert [p.path for p in progress if p.outcome == "pruned"] == [str(docs / "guide.rst")]
    state = await index_state(engine, "notes", tmp_path)
    assert "docs/guide.rst" not in state["docs"]
    assert "other/keep.md" in state["docs"]
    assert not any(c[0] == "docs/guide.rst" for c in state["chunks"])


async def test_prune_never_removes_documents_of_a_missing_target(engine: Engine,
                                                                tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    await ingest_all(engine, [docs], collection="notes")
    shutil.rmtree(docs)  # an unmounted drive looks the same
    result, _ = await ingest_all(engine, [docs], collection="notes", prune=True)
    assert result.pruned == 0
    assert result.errors == ((str(docs), "path not found"),)
    assert len((await index_state(engine, "notes", tmp_path))["docs"]) == 7


def _make_unreadable(path: Path) -> tuple[str, str]:
    """A file this process cannot read: (the path its error is reported under, the reason).

    chmod 000 stops everyone but root; as root (CI containers) a symlink to
    /proc/self/mem is a regular file whose first page the kernel refuses to read (EIO).
    """
    if os.geteuid() != 0:
        path.write_text("secret")
        path.chmod(0)
        return str(path), "permission denied (cannot read the file)"
    path.symlink_to("/proc/self/mem")
    return os.path.realpath(path), "cannot read the file: Input/output error"


async def test_bad_files_are_reported_and_the_run_goes_on(engine: Engine,
                                                         tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for pdf in EDGE_PDFS.iterdir():
        shutil.copy(pdf, bad / pdf.name)
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (bad / "empty.md").write_bytes(b"")
    (bad / "huge.txt").write_text("word " * 700_000)  # 3.5 MB, over the cap below
    with (bad / "sparse.log").open("wb") as fh:  # 3 GB without using the disk: its size
        fh.truncate(3 * 1024**3)                  # overflows a 32-bit column
    (bad / "latin1.txt").write_bytes("Le café était très crème.\n".encode("cp1252"))
    (bad / "loop").symlink_to(bad / "loop")
    (bad / "sub").mkdir()
    (bad / "sub" / "up").symlink_to(bad)
    os.mkfifo(bad / "pipe.md")
    locked_path, locked_reason = _make_unreadable(bad / "locked.txt")
    (bad / "good.md").write_text("# Good\n\nThis one is fine.\n")
    engine.settings.retrieval.max_file_mb = 3.0  # the largest edge-case PDF is 2.8 MB

    result, progress = await ingest_all(engine, [bad], collection="bad")
    reasons = dict(result.errors)
    assert result.status == "complete"
    expected = {
        "cmyk-image.pdf": "no text layer",
        "libreoffice-writer-password.pdf": "encrypted",
        "unreadablemetadata.pdf": "not a readable PDF",
        "binary.txt": "binary",
        "empty.md": "empty file",
        "huge.txt": "too large",
        "sparse.log": "too large",
        "loop": "symlink loop",
        "sub/up": "symlink loop",
        "pipe.md": "not a regular file (a named pipe)",
        "locked.txt": locked_reason,
    }
    by_name = {"locked.txt" if path == locked_path else os.path.relpath(path, bad): reason
               for path, reason in reasons.items()}
    assert set(by_name) == set(expected), by_name
    for name, words in expected.items():
        assert words in by_name[name], (name, by_name[name])
    assert result.failed == len(expected)
    assert result.indexed == 3  # good.md, latin1.txt and the Arabic PDF
    assert len(progress) == result.files_seen == result.failed + result.indexed
    state = await index_state(engine, "bad", bad)
    assert "café était très crème" in " ".join(c[2] for c in state["chunks"])
    arabic = " ".join(c[2] for c in state["chunks"] if c[0] == "habibi.pdf")
    assert any("\u0600" <= ch <= "\u06ff" for ch in arabic)
    for name in ("binary.txt", "empty.md", "huge.txt", "sparse.log", "cmyk-image.pdf"):
        if name in state["docs"]:  # failed files have a row with the reason and no chunks
            status, error, chunk_count, _ = state["docs"][name]
            assert (status, chunk_count) == ("error", 0) and error
    assert not any(c[0] in expected for c in state["chunks"])
    errors = await engine.library.documents("bad", status="error")
    assert {os.path.relpath(d.path, bad) for d in errors} >= {"binary.txt", "empty.md",
                                                              "huge.txt", "sparse.log",
                                                              "cmyk-image.pdf"}
    run = (await engine.library.runs("bad"))[0]
    assert (run.status, run.failed, run.indexed) == ("complete", len(expected), 3)
    assert dict(run.errors) == reasons


async def test_a_failing_file_keeps_its_previous_index(engine: Engine, tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    await ingest_all(engine, [docs / "readme.txt"], collection="notes")
    before = await index_state(engine, "notes", docs)
    (docs / "readme.txt").write_bytes(b"\x00\x01\x02" * 100)  # now binary
    result, _ = await ingest_all(engine, [docs / "readme.txt"], collection="notes")
    assert result.failed == 1
    after = await index_state(engine, "notes", docs)
    assert after["chunks"] == before["chunks"]
    assert after["docs"]["readme.txt"][0] == "error"
    (docs / "readme.txt").write_text("Sourdough\n\nFixed again.\n")
    fixed, _ = await ingest_all(engine, [docs / "readme.txt"], collection="notes")
    assert fixed.indexed == 1
    assert (await index_state(engine, "notes", docs))["docs"]["readme.txt"][0] == "indexed"


async def test_ingestion_run_row_records_target_options_and_totals(engine: Engine,
                                                                  tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    result, _ = await ingest_all(engine, [docs], collection="notes", tags=["field"],
                                 exclude=["*.py"])
    assert engine.db is not None
    async with engine.db.read() as s:
        row = await s.get(m.IngestionRun, result.run_id)
    assert row is not None
    assert row.status == "complete" and row.finished_at is not None
    assert row.target == [str(docs)]
    assert row.options["tags"] == ["field"] and row.options["exclude"] == ["*.py"]
    assert row.options["collection"] == "notes"
    assert (row.files_seen, row.indexed, row.failed) == (7, 6, 1)
    assert row.errors == [{"path": str(docs / "broken.pdf"), "reason": dict(result.errors)[
        str(docs / "broken.pdf")]}]
    listed = await engine.library.documents("notes")
    assert all(d.tags == ("field",) for d in listed)
    assert not any(d.path.endswith(".py") for d in listed)


async def test_embedding_usage_is_recorded_per_batch(engine: Engine, tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    result, _ = await ingest_all(engine, [docs], collection="notes")
    assert engine.db is not None
    async with engine.db.read() as s:
        rows = (await s.execute(select(m.TokenUsage))).scalars().all()
        chunk_tokens = await s.scalar(select(func.sum(m.Chunk.token_count)))
    assert rows and all(r.kind == "embedding" and r.user_id == engine.user_id for r in rows)
    assert all(r.provider == "local" and r.cost == 0 and not r.estimated for r in rows)
    # the model reads each chunk plus its two special tokens
    assert sum(r.embedding_tokens for r in rows) == chunk_tokens + 2 * result.chunks


async def test_a_collection_indexed_with_another_embedder_is_refused(engine: Engine,
                                                                    tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    await ingest_all(engine, [docs / "notes.md"], collection="notes")
    assert engine.db is not None
    async with engine.db.write() as s:
        await s.execute(update(m.Collection).values(embedder="openai:old/ada", dimension=1536))
    with pytest.raises(EmbedderMismatch) as caught:
        await ingest_all(engine, [docs / "guide.rst"], collection="notes")
    assert "parley reindex --embed --collection notes" in (caught.value.hint or "")
    assert "openai:old/ada" in str(caught.value)
    with pytest.raises(EmbedderMismatch):
        await engine.library.check_embedder("notes")
    assert len(await engine.library.documents("notes")) == 1  # nothing was written


async def test_stopping_a_run_marks_it_interrupted_and_a_rerun_completes(
        engine: Engine, tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    events = engine.library.ingest([docs], collection="notes")
    first = await anext(events)
    assert isinstance(first, IngestProgress)
    await events.aclose()  # what Ctrl-C does to the iteration
    runs = await engine.library.runs("notes")
    assert runs[0].status == "interrupted" and runs[0].finished_at is not None
    assert 1 <= runs[0].indexed < 7
    rerun, _ = await ingest_all(engine, [docs], collection="notes")
    assert rerun.indexed + rerun.skipped == 7 and rerun.skipped >= 1
    resumed = await index_state(engine, "notes", docs)
    fresh, _ = await ingest_all(engine, [docs], collection="fresh")
    assert fresh.indexed == 7
    assert await index_state(engine, "fresh", docs) == resumed


# -- file discovery (no database) ------------------------------------------------------------
def test_globs_match_names_anywhere_and_paths_from_the_target() -> None:
    from engine.ingest.walker import glob_matches

    assert glob_matches(["*.md"], "a/b/c.md") and not glob_matches(["*.md"], "a/c.mdx")
    assert glob_matches(["docs/**/*.rst"], "docs/x/y/z.rst")
    assert glob_matches(["docs/**/*.rst"], "docs/z.rst")
    assert not glob_matches(["docs/*.rst"], "docs/x/z.rst")
    assert glob_matches(["node_modules"], "web/node_modules")
    assert glob_matches(["build/"], "x/build") and not glob_matches(["/build"], "x/build")
    assert glob_matches(["[!a]*.md"], "b.md") and not glob_matches(["[!a]*.md"], "a.md")
    assert glob_matches(["file?.txt"], "file1.txt") and not glob_matches(["a+b"], "aab")


def test_discovery_rules(tmp_path: Path) -> None:
    from engine.ingest.walker import discover, is_gone

    root = tmp_path / "root"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "node_modules" / "pkg").mkdir(parents=True)
    for rel in ("a.md", "docs/b.rst", "docs/deep/c.txt", ".git/config.md", ".hidden.md",
                "node_modules/pkg/readme.md", "docs/notes.log"):
        (root / rel).write_text(f"# {rel}\n\nsome text\n")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    (root / "alias.md").symlink_to(root / "a.md")  # the same file twice: one document
    (root / "docs" / "again").symlink_to(root / "docs" / "deep")  # a folder twice: once
    outside = tmp_path / "outside.md"
    outside.write_text("# Outside\n\nlinked in\n")
    (root / "link-out.md").symlink_to(outside)

    found = discover([root], exclude=["node_modules"])
    rel = sorted(str(p.relative_to(tmp_path)) for p in found.files)
    assert rel == ["outside.md", "root/a.md", "root/docs/b.rst", "root/docs/deep/c.txt",
                   "root/docs/notes.log"]
    assert found.errors == [] and found.roots == [root]

    with_hidden = discover([root], hidden=True, include=["*.md"])
    assert {p.name for p in with_hidden.files} == {"a.md", "config.md", ".hidden.md",
                                                    "readme.md", "outside.md"}
    anchored = discover([root], include=["docs/**"], exclude=["*.log"])
    assert sorted(p.name for p in anchored.files) == ["b.rst", "c.txt"]

    explicit = discover([root / ".hidden.md", root / "image.png", tmp_path / "missing"])
    assert [p.name for p in explicit.files] == [".hidden.md", "image.png"]  # named: taken
    assert explicit.missing == [str(tmp_path / "missing")]
    assert explicit.errors == [(str(tmp_path / "missing"), "path not found")]

    assert not is_gone(str(root / "a.md"))
    assert is_gone(str(root / "nope.md")) and is_gone(str(root / "a.md" / "x"))


async def test_an_embedder_failure_stops_the_run_cleanly_and_a_rerun_finishes(
        settings: Any, tmp_path: Path, database_url: str) -> None:
    from engine import load_settings
    from engine.errors import ProviderError
    from tests.conftest import migrate
    from tests.support.openai_server import OpenAITestServer

    docs = copy_fixtures(tmp_path / "docs")
    await migrate(settings)
    with OpenAITestServer(embedding_dim=16) as server:
        served = load_settings(overrides={
            "database": {"url": database_url},
            "embedding": {"provider": "lab", "model": "test-embedding"},
            "providers": {"lab": server.provider_config(max_retries=0)}})
        async with Engine(served) as engine:
            await engine.library.create_collection("notes")  # learns the dimension
            server.fail_next = 1000
            with pytest.raises(ProviderError):
                await engine.library.ingest([docs], collection="notes")
            runs = await engine.library.runs("notes")
            assert runs[0].status == "failed" and runs[0].finished_at is not None
            assert runs[0].errors[-1][0] == "" and "stopped" in runs[0].errors[-1][1]
            assert (await engine.library.collection("notes")).chunk_count == 0
            server.fail_next = 0
            result = await engine.library.ingest([docs], collection="notes")
            assert (result.status, result.indexed) == ("complete", 7)
            await index_state(engine, "notes", docs)


def test_text_that_no_database_can_store_is_replaced_char_for_char() -> None:
    from engine.ingest.loaders import LoadedDocument, PageSpan
    from engine.ingest.prepare import _storable

    doc = LoadedDocument("/x.pdf", "pdf", "application/pdf", "T\x00itle",
                         "ab\x00cd \ud835 ef", (PageSpan(1, 0, 10),))
    clean = _storable(doc)
    assert clean.text == "ab\ufffdcd \ufffd ef" and len(clean.text) == len(doc.text)
    assert clean.title == "T\ufffditle" and clean.pages == doc.pages
    assert _storable(clean) is clean
