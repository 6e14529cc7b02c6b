"""emocam: facial-emotion recognition at the edge, under one import name.

- ``emocam.edge``: the device package (camera -> faces -> emotions -> MQTT); never imports
  TensorFlow or Keras.
- ``emocam.train``: datasets, networks, training and evaluation (the ``train`` extra).
- ``emocam.convert``: Keras -> int8 TFLite with a verified sidecar (the ``train`` extra).

The three live in the repository's top-level ``edge/``, ``train/`` and ``convert/`` folders;
``emocam/edge``, ``emocam/train`` and ``emocam/convert`` are symbolic links to them, so the
source tree, an editable install and the wheel all import them by the same names.
"""

__version__ = "0.3.0"
