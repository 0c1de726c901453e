"""Fixtures of the engine tests that more than one module uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mcp_launch import http_server


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    """A real MCP server over Streamable HTTP on 127.0.0.1, one per test module."""
    with http_server() as url:
        yield url
