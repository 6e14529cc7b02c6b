"""Tracking: per-frame faces and probabilities -> stable face ids, smoothed emotions, events on change."""
