"""Capture, the first stage of a frame's way: a camera, stream, video file or image folder -> ``Frame``.

``factory.make_source`` picks the source ``[source] name`` names; ``live`` runs cameras and streams on
a capture thread with a newest-frame hand-off, ``files`` plays files and folders, ``picamera`` is the
only module that imports picamera2. Capture imports nothing from the later stages.
"""
