"""``python -m edge`` is ``emocam``."""

from edge.cli import main

raise SystemExit(main())
