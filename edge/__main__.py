"""``python -m emocam.edge`` is ``emocam``."""

from emocam.edge.cli import main

raise SystemExit(main())
