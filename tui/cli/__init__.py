"""The ``parley`` command line: a front end beside the Textual app.

``main`` holds the command group and the entry point; each other module holds the commands
of one area (``ask``, ``ingest``, ``sessions``, ...) and lists them in ``COMMANDS``;
``common`` holds what they share (settings, the engine's lifetime, output and errors).
Importing this package imports neither Textual nor the engine.
"""
