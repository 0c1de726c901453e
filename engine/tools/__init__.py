"""Tools a model may call while answering: Parley's own search and MCP servers.

This package owns everything between a model asking for a tool and the answer it gets
back: which tools are offered (``toolbox``: the built-in ``parley.search`` and the
configured MCP servers, started on first use), whether a call may run (``policy``:
approval ``ask``/``auto``/``never``, allow and deny globs on the canonical ``server.tool``
name, the taint rule, "always" answers stored per user), the rounds of a turn with their
limits (``loop``: rounds, calls, timeouts, result size, the loop guard, the budget before
every round) and the stored, encrypted tool runs (``store``: saving, listing, and the
history sent back to the model on later turns). The MCP SDK is imported in one module,
``mcp_client``, and only when a server starts.
"""
