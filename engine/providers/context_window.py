"""Asking a model server how long a context its model takes.

Servers say it in different places; each is asked in turn, with a short timeout, and the
first answer wins:

- ``GET {base_url}/models``: vLLM's ``max_model_len`` (also ``context_length`` or
  ``context_window`` where other servers put it) on the model's entry;
- ``GET {root}/props``: llama.cpp's server, ``default_generation_settings.n_ctx`` (or a
  top-level ``n_ctx``), the size the server was started with (``--ctx-size``);
- ``POST {root}/api/show``: Ollama, ``num_ctx`` in the model's parameters, else
  ``<architecture>.context_length`` in its ``model_info``.

``root`` is ``base_url`` without a trailing ``/v1``. A server that answers none of them (a
hosted API) gives None, and the caller falls back to the configured or default window.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from engine.providers.openai_chat import OpenAIChatProvider

PROBE_TIMEOUT = 3.0
_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.MULTILINE)


def _positive(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


async def _get(provider: OpenAIChatProvider, url: str, body: Any = None) -> Any:
    try:
        if body is None:
            response = await provider._client.get(url, headers=provider._headers(),
                                                  timeout=PROBE_TIMEOUT)
        else:
            response = await provider._client.post(url, json=body, headers=provider._headers(),
                                                   timeout=PROBE_TIMEOUT)
        if response.status_code >= 400:
            return None
        return response.json()
    except (httpx.HTTPError, ValueError):
        return None


def _from_models(data: Any, model: str) -> int | None:
    entries = data.get("data") if isinstance(data, dict) else None
    for entry in entries or ():
        if isinstance(entry, dict) and entry.get("id") == model:
            for key in ("max_model_len", "context_length", "context_window"):
                found = _positive(entry.get(key))
                if found:
                    return found
    return None


def _from_props(data: Any) -> int | None:
    if not isinstance(data, dict):
        return None
    settings = data.get("default_generation_settings")
    if isinstance(settings, dict) and _positive(settings.get("n_ctx")):
        return _positive(settings.get("n_ctx"))
    return _positive(data.get("n_ctx"))


def _from_ollama(data: Any) -> int | None:
    if not isinstance(data, dict):
        return None
    match = _NUM_CTX.search(str(data.get("parameters") or ""))
    if match:
        return _positive(match.group(1))
    info = data.get("model_info")
    if isinstance(info, dict):
        arch = info.get("general.architecture")
        found = _positive(info.get(f"{arch}.context_length")) if arch else None
        if found:
            return found
        for key, value in info.items():
            if str(key).endswith(".context_length") and _positive(value):
                return _positive(value)
    return None


async def probe_context_window(provider: OpenAIChatProvider,
                               model: str) -> tuple[int | None, str | None]:
    """(tokens, where the server said it), or (None, None) when no server endpoint says."""
    base = provider.base_url
    found = _from_models(await _get(provider, f"{base}/models"), model)
    if found:
        return found, "server /models"
    root = base[:-3] if base.endswith("/v1") else base
    found = _from_props(await _get(provider, f"{root}/props"))
    if found:
        return found, "server /props (llama.cpp)"
    found = _from_ollama(await _get(provider, f"{root}/api/show", {"model": model}))
    if found:
        return found, "server /api/show (Ollama)"
    return None, None
