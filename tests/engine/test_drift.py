"""Citation drift: a stored citation says whether its source still says that."""

from __future__ import annotations

import json
from pathlib import Path

from engine import Engine
from engine.types import Done, Sources
from tests.cli.test_cli_foundation import parley

TOPICS = ["gardening tomatoes in raised beds", "repairing bicycle chains",
          "baking sourdough bread", "the turquoise lighthouse keeper and his storm log",
          "tuning a classical guitar", "brewing green tea at the right temperature"]


def paragraph(topic: str, n: int) -> str:
    return "\n".join(f"Note {i} about {topic}: detail {i} matters when {topic} goes well."
                     for i in range(n))


def write_notes(path: Path, *, above: int = 0, passage: str | None = None) -> None:
    blocks = [paragraph(t, 8) for t in TOPICS]
    if passage is not None:
        blocks[3] = passage
    path.write_text("\n".join(f"Preface line {i}." for i in range(above))
                    + ("\n\n" if above else "") + "\n\n".join(blocks) + "\n")


async def _ask(engine: Engine, question: str) -> tuple[int, int]:
    events = [e async for e in engine.chat.ask(question)]
    sources = next(e for e in events if isinstance(e, Sources))
    done = next(e for e in events if isinstance(e, Done))
    cited = next(c for c in sources.citations if "turquoise" in c.snippet)
    return done.session_id, cited.marker


async def _state(engine: Engine, session_id: int, marker: int):  # type: ignore[no-untyped-def]
    detail = await engine.sessions.get(session_id)
    (answer,) = [m for m in detail.messages if m.role == "assistant"]
    return next(c for c in answer.citations if c.marker == marker)


async def test_a_citation_is_current_moved_changed_then_missing(engine: Engine,
                                                                tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    write_notes(notes)
    await engine.library.ingest([tmp_path])
    session_id, marker = await _ask(engine, "What did the turquoise lighthouse keeper log?")
    cited = await _state(engine, session_id, marker)
    assert cited.drift is not None and cited.drift.state == "current"
    original = (cited.line_start, cited.line_end)
    assert original[0] is not None

    write_notes(notes, above=7)  # seven lines (and a blank one) above the passage
    await engine.library.ingest([tmp_path])
    moved = await _state(engine, session_id, marker)
    assert moved.drift is not None and moved.drift.state == "moved"
    assert (moved.line_start, moved.line_end) == original, "the stored place stays"
    assert (moved.drift.line_start, moved.drift.line_end) == (original[0] + 8,
                                                              original[1] + 8)
    # the new place really holds the passage
    lines = notes.read_text().splitlines()
    first_line = moved.snippet.splitlines()[0]
    assert first_line in lines[moved.drift.line_start - 1]

    write_notes(notes, above=7, passage=paragraph("painting watercolour skies", 8))
    await engine.library.ingest([tmp_path])
    changed = await _state(engine, session_id, marker)
    assert changed.drift is not None and changed.drift.state == "changed"
    assert "turquoise" in changed.snippet  # what it said is kept

    notes.unlink()
    await engine.library.ingest([tmp_path], prune=True)
    missing = await _state(engine, session_id, marker)
    assert missing.drift is not None and missing.drift.state == "missing"
    checks = await engine.verify_citations(session_id)
    assert {c.citation.drift.state for c in checks if c.citation.drift} == {"missing"}


async def test_a_small_edit_inside_the_passage_is_found_again(engine: Engine,
                                                              tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    write_notes(notes)
    await engine.library.ingest([tmp_path])
    session_id, marker = await _ask(engine, "What did the turquoise lighthouse keeper log?")
    cited = await _state(engine, session_id, marker)
    # a typo fixed in the cited passage: the fuzzy match re-anchors it
    write_notes(notes, above=3, passage=paragraph(TOPICS[3], 8).replace("matters", "mattered",
                                                                          1))
    await engine.library.ingest([tmp_path])
    found = await _state(engine, session_id, marker)
    assert found.drift is not None and found.drift.state == "moved"
    assert found.drift.line_start == cited.line_start + 4


def test_drift_through_the_command_line(parley_home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    notes = docs / "notes.md"
    write_notes(notes)
    assert parley("ingest", str(docs), home=parley_home).returncode == 0
    asked = parley("ask", "--json", "What did the turquoise lighthouse keeper log?",
                   home=parley_home)
    assert asked.returncode == 0, asked.stderr
    session_id = json.loads(asked.stdout)["session_id"]

    def states() -> list[dict]:  # type: ignore[type-arg]
        out = parley("sessions", "verify", str(session_id), "--json", home=parley_home)
        assert out.returncode == 0, out.stderr
        return [c for c in json.loads(out.stdout)["citations"]
                if "turquoise" in c["citation"]["snippet"]]

    first = states()[0]
    assert first["citation"]["drift"]["state"] == "current"
    write_notes(notes, above=7)
    assert parley("ingest", str(docs), home=parley_home).returncode == 0
    moved = states()[0]
    drift = moved["citation"]["drift"]
    assert drift["state"] == "moved"
    assert drift["line_start"] == moved["citation"]["line_start"] + 8
    shown = parley("sessions", "show", str(session_id), home=parley_home)
    assert f"[moved: now {notes}, lines {drift['line_start']}-" in shown.stdout
    as_json = json.loads(parley("sessions", "show", str(session_id), "--json",
                                home=parley_home).stdout)
    cites = [c for msg in as_json["messages"] for c in msg["citations"]
             if "turquoise" in c["snippet"]]
    assert cites[0]["drift"]["state"] == "moved"
    notes.unlink()
    assert parley("ingest", "--prune", str(docs), home=parley_home).returncode == 0
    gone = states()[0]
    assert gone["citation"]["drift"]["state"] == "missing"
    assert "[missing: the document was removed" in parley(
        "sessions", "verify", home=parley_home).stdout
    bad = parley("sessions", "verify", "999", home=parley_home)
    assert bad.returncode == 1 and "no session with id 999" in bad.stderr
