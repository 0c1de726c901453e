"""The ``parley`` command line: a front end beside the Textual app.

``entry`` is the entry point (plain ``parley`` goes straight to ``start``, the terminal UI,
without click); ``main`` holds the command group; each other module holds the commands
of one area (``ask``, ``ingest``, ``sessions``, ...) and lists them in ``COMMANDS``;
``common`` holds what they share (settings, the engine's lifetime, output and errors).
Importing this package imports neither Textual nor the engine.
"""
