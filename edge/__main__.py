"""``python -m emocam.edge`` is ``emocam``."""

from emocam.edge.service.cli import main

raise SystemExit(main())
