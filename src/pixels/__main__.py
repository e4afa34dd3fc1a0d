"""`python -m pixels` is the `pixels` command."""

from .cli import main

raise SystemExit(main())
