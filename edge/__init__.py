"""emocam.edge, the on-device package: camera -> faces -> emotions -> MQTT.

One wing per stage, imported one way (a wing imports only those before it and the shared modules
here: ``errors``, ``field_checks``, ``log_limit``, ``native_stderr``, ``closed_stdout``)::

    capture -> vision -> tracking -> mqtt          service (cli, config, daemon) wires them all

``payloads`` is the subscriber API (``from emocam.edge.payloads import parse_message``).

Nothing here imports TensorFlow or Keras; the Pi installs only what this package needs.
"""
