"""``python -m tui.cli``: the same as the ``parley`` command."""

from tui.cli.entry import main

main()
