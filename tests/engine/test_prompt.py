"""Prompt building: numbered sources with their location, and the context budget."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.db.coltypes import UnreadableText
from engine.errors import ContextTooLong
from engine.chat.prompt import (
    DEFAULT_SYSTEM_PROMPT,
    answer_reserve,
    build_prompt,
    estimate_tokens,
)
from engine.types import Message, SearchHit

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def hit(n: int, words: int = 20, page: int | None = None) -> SearchHit:
    return SearchHit(rank=n, score=1.0 / n, path=f"/docs/doc{n}.pdf", document_id=n,
                     chunk_id=10 + n, page=page, line_start=n * 10, line_end=n * 10 + 5,
                     heading="Intro" if n == 1 else None,
                     text=" ".join(f"w{n}x{i}" for i in range(words)))


def msg(i: int, role: str, content: str) -> Message:
    return Message(id=i, session_id=1, parent_id=i - 1 or None, role=role, content=content,
                   status="complete", model=None, created_at=NOW)


def history(turns: int, words: int = 50) -> list[Message]:
    out = []
    for t in range(turns):
        out.append(msg(2 * t + 1, "user", f"question {t} " + "q " * words))
        out.append(msg(2 * t + 2, "assistant", f"answer {t} " + "a " * words))
    return out


def test_sources_are_numbered_with_file_page_and_lines_before_the_question() -> None:
    prompt = build_prompt(system_prompt="SYS", question="What is w2?",
                          hits=[hit(1, page=3), hit(2)])
    assert [m.role for m in prompt.messages] == ["system", "user"]
    assert prompt.messages[0].content == "SYS"
    final = prompt.messages[-1].content
    assert "[1] /docs/doc1.pdf p.3 L10-15 (Intro)\nw1x0 w1x1" in final
    assert "[2] /docs/doc2.pdf L20-25\nw2x0" in final
    assert final.index("[1]") < final.index("[2]") < final.index("Question: What is w2?")
    assert [(s.marker, s.hit.chunk_id) for s in prompt.sources] == [(1, 11), (2, 12)]
    assert [t.marker for t in prompt.source_texts()] == [1, 2]


def test_without_sources_the_question_goes_alone() -> None:
    prompt = build_prompt(system_prompt=DEFAULT_SYSTEM_PROMPT, question="Hi?")
    assert prompt.messages[-1].content == "Hi?"
    assert prompt.sources == ()


def test_history_is_kept_in_order_when_it_fits() -> None:
    prompt = build_prompt(system_prompt="S", question="next", history=history(3, words=5))
    roles = [m.role for m in prompt.messages]
    assert roles == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert prompt.messages[1].content.startswith("question 0")
    assert prompt.dropped_history == 0


def test_history_is_trimmed_oldest_first() -> None:
    prompt = build_prompt(system_prompt="S", question="next", history=history(20, words=200),
                          context_window=2048)
    kept = [m.content.split()[1] for m in prompt.messages[1:-1]]
    assert prompt.dropped_history > 0
    assert kept == [str(n) for n in range(20 - len(kept) // 2, 20) for _ in (0, 1)]
    assert prompt.tokens <= 2048 - answer_reserve(2048, None)


def test_sources_that_do_not_fit_are_dropped_and_markers_stay_contiguous() -> None:
    hits = [hit(1, words=40), hit(2, words=3000), hit(3, words=40)]
    prompt = build_prompt(system_prompt="S", question="q", hits=hits, context_window=1024)
    assert prompt.dropped_sources == 1
    assert [(s.marker, s.hit.chunk_id) for s in prompt.sources] == [(1, 11), (2, 13)]
    assert "[2] /docs/doc3.pdf" in prompt.messages[-1].content
    assert "doc2" not in prompt.messages[-1].content


def test_history_keeps_a_share_of_the_room_against_many_sources() -> None:
    hits = [hit(n, words=150) for n in range(1, 30)]
    prompt = build_prompt(system_prompt="S", question="q", hits=hits,
                          history=history(4, words=40), context_window=4096)
    assert prompt.dropped_sources > 0
    assert len(prompt.messages) > 2  # the last exchange survived the sources
    assert prompt.messages[-2].content.startswith("answer 3")


def test_a_question_that_cannot_fit_is_refused_before_any_call() -> None:
    with pytest.raises(ContextTooLong) as caught:
        build_prompt(system_prompt="S", question="word " * 5000, context_window=2048)
    assert "context window is 2048" in caught.value.message
    assert "context_window" in (caught.value.hint or "")


def test_unreadable_and_empty_messages_stay_out_of_the_prompt() -> None:
    past = [msg(1, "user", "first"), msg(2, "assistant", ""),
            msg(3, "user", UnreadableText("InvalidToken")), msg(4, "assistant", "fine")]
    prompt = build_prompt(system_prompt="S", question="q", history=past)
    assert [m.content for m in prompt.messages[1:-1]] == ["first", "fine"]


def test_token_estimate_is_conservative_for_other_scripts() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd" * 10) == 10
    assert estimate_tokens("日本語のテキスト") >= 5
    assert answer_reserve(8192, None) == 2048
    assert answer_reserve(8192, 300) == 300
    assert answer_reserve(1024, None) == 256
