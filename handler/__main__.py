"""`python -m handler ...`: the command line."""

from handler.cli import main

raise SystemExit(main())
