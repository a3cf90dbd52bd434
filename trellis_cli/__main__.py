"""``python -m trellis_cli``: the same as the ``trellis`` command."""

import sys

from trellis_cli.cli import main

if __name__ == "__main__":
    sys.exit(main())
