"""`python -m pixels.app [--model ...] [--port ...]`: the studio, as `pixels app` starts it."""

from .cli import main

raise SystemExit(main())
