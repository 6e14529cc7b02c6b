"""emocam.edge, the on-device package: camera -> faces -> emotions -> MQTT.

Nothing here imports TensorFlow or Keras; the Pi installs only what this package needs.
"""
