"""``python -m qlab``: the command line (see qlab.cli)."""

from qlab.cli.app import main

raise SystemExit(main())
