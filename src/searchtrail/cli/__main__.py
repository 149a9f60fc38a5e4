"""``python -m searchtrail.cli``: the ``searchtrail`` command."""

from searchtrail.cli import main

main()
