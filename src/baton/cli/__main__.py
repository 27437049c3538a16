"""``python -m baton.cli``: the same as the ``baton`` command."""

from baton.cli import main

main()
