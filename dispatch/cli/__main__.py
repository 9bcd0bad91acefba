"""``python -m dispatch.cli``: the ``dispatch`` command without its console script."""

from . import main

main()
