"""The pixels studio: a Gradio web app for painting strength maps and running PIXELS edits.

    pixels app --model demo            # or, in Python:
    from pixels.app import launch, start
    running = start(port=None)         # a background server on a free loopback port
    running.url; running.close()

One loaded model serves every browser session, one edit at a time; each session keeps its own
photo, maps, history and temporary folder. Gradio is imported only when the studio starts.
"""

from __future__ import annotations

from .server import Running, launch, start

__all__ = ["Running", "launch", "start"]
