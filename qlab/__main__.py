"""``python -m qlab``: the command line (see qlab.cli)."""

from qlab.cli import main

raise SystemExit(main())
