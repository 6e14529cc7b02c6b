"""The service: the CLI (the composition root), the config, the frame loop, its stats and systemd notify.

The only wing that imports all the others; nothing imports it.
"""
