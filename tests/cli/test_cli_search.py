"""``parley search``: one query, batch mode, filters, JSON shape, bad input. Both backends.

The command runs against the database the ``engine`` fixture seeded: in-process for what a
search returns, the real command in a subprocess for the errors a user meets.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from engine import Engine
from tests.engine.test_retrieval import seed
from tests.support.cli import real_cli, run_cli

HIT_KEYS = {"rank", "score", "path", "document_id", "chunk_id", "page", "line_start",
            "line_end", "heading", "text"}


def search(engine: Engine, *args: str, stdin: str | None = None,
           real: bool = False) -> subprocess.CompletedProcess[str]:
    """``parley search ARGS`` in-process, or with ``real=True`` in a subprocess."""
    url = engine.settings.database.url
    assert url is not None
    return (real_cli if real else run_cli)("--db", url, "search", *args, stdin=stdin,
                                           timeout=120)


async def test_one_query_json_and_text(engine: Engine) -> None:
    await seed(engine)
    out = search(engine, "E4711 backup", "--json", "-k", "2")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["query"] == "E4711 backup"
    assert len(data["hits"]) == 2
    first = data["hits"][0]
    assert set(first) == HIT_KEYS
    assert first["path"] == "/notes/errors.md" and first["rank"] == 1
    assert first["line_start"] == 1 and first["heading"] == "Notes > errors.md"
    assert "E4711" in first["text"]

    explained = json.loads(search(engine, "warranty battery", "--json", "--explain").stdout)
    hit = explained["hits"][0]
    assert set(hit) == HIT_KEYS | {"keyword_rank", "vector_rank", "collection"}
    assert hit["keyword_rank"] == 1 and hit["vector_rank"] == 1 and hit["page"] == 3

    text = search(engine, "warranty battery", "--explain", "-k", "1")
    assert text.returncode == 0, text.stderr
    assert "/manuals/warranty.pdf:1 (page 3)" in text.stdout
    assert "keyword #1" in text.stdout and "vector #1" in text.stdout


async def test_filters_and_collections(engine: Engine) -> None:
    await seed(engine)
    out = search(engine, "notes about everything", "--json", "-k", "10", "--type", "markdown",
                 "--path", "recipes/*", "--collection", "notes")
    assert out.returncode == 0, out.stderr
    assert [h["path"] for h in json.loads(out.stdout)["hits"]] == ["/notes/recipes/bread.md"]
    tagged = json.loads(search(engine, "notes", "--json", "-k", "10", "--tag", "home").stdout)
    assert {h["path"] for h in tagged["hits"]} == {"/notes/garden.md", "/notes/cats.txt"}
    missing = search(engine, "x", "--collection", "nope", real=True)
    assert missing.returncode == 1
    assert "no collection named 'nope'" in missing.stderr
    assert "parley collections list" in missing.stderr
    assert missing.stdout == ""


async def test_batch_mode_prints_one_line_per_query(engine: Engine, tmp_path: Path) -> None:
    await seed(engine)
    lines = [{"id": 7, "text": "E4711"}, {"id": "q-2", "text": "knead dough"},
             {"text": 'NEAR( "unbalanced -* OR'}, {"id": None, "text": ""}]
    body = "\n".join(json.dumps(x) for x in lines[:2]) + "\n\n" + \
        "\n".join(json.dumps(x) for x in lines[2:]) + "\n"
    out = search(engine, "--queries", "-", "--json", "-k", "2", stdin=body)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == [7, "q-2", 4, None]  # no id: the line number
    assert [r["query"] for r in rows] == [x["text"] for x in lines]
    assert rows[0]["hits"][0]["path"] == "/notes/errors.md"
    assert rows[1]["hits"][0]["path"] == "/notes/recipes/bread.md"
    assert all(len(r["hits"]) <= 2 and all(set(h) == HIT_KEYS for h in r["hits"])
               for r in rows)
    assert rows[3]["hits"] == []
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"id": 1, "text": "sleepy animals"}) + "\n")
    from_file = search(engine, "--queries", str(queries), "--json", "-k", "1")
    assert json.loads(from_file.stdout)["hits"][0]["path"] == "/notes/cats.txt"


async def test_bad_batch_input_is_a_usage_error_before_any_output(engine: Engine,
                                                                  tmp_path: Path) -> None:
    await seed(engine)
    good = json.dumps({"id": 1, "text": "E4711"})
    for n, (body, fragment) in enumerate([
            (good + "\n{not json\n", "line 2: not valid JSON"),
            (good + '\n{"id": 2}\n', 'line 2: no "text" string'),
            ('["E4711"]\n', 'line 1: no "text" string'),
            ('{"text": 5}\n', 'line 1: no "text" string')]):
        out = search(engine, "--queries", "-", "--json", stdin=body, real=n == 0)
        assert out.returncode == 2, (body, out.stderr)
        assert fragment in out.stderr and out.stdout == ""
    missing = search(engine, "--queries", str(tmp_path / "none.jsonl"), "--json")
    assert missing.returncode == 2 and "cannot read queries" in missing.stderr
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b'{"text": "\xff\xfe"}\n')
    assert "not UTF-8" in search(engine, "--queries", str(binary)).stderr
    neither = search(engine)
    assert neither.returncode == 2 and "either a QUERY or --queries" in neither.stderr
    both = search(engine, "x", "--queries", "-", stdin=good)
    assert both.returncode == 2


async def test_nasty_queries_and_no_matches(engine: Engine) -> None:
    await seed(engine)
    for query in ['"unbalanced', "NEAR(cats", "-cats", "a AND (b OR", "*", "the of"]:
        out = search(engine, "--json", "--", query)  # "--": a query may start with "-"
        assert out.returncode == 0, (query, out.stderr)
        assert isinstance(json.loads(out.stdout)["hits"], list)
    none = search(engine, "zzzqqq", "--type", "pdf", "--tag", "home")
    assert none.returncode == 0 and none.stdout == "" and "no matches" in none.stderr
    from_stdin = search(engine, "-", "--json", "-k", "1", stdin="E4711\n")
    assert json.loads(from_stdin.stdout)["hits"][0]["path"] == "/notes/errors.md"
