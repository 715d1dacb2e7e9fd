"""Entry point of `python -m clarify_sim`."""

import sys

from clarify_sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
