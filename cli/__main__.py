"""``python -m mugpos.cli``: the same as the ``mugpos`` command."""

from mugpos.cli.main import main

main()
