"""`python -m pixels.app [--model ...] [--port ...]`: the studio, as `pixels app` starts it."""

import sys

from pixels.cli import main

raise SystemExit(main(["app", *sys.argv[1:]]))
