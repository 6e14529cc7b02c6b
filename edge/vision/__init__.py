"""Vision: a frame -> faces (``detectors``) -> aligned crops (``align``) -> emotion probabilities (``classifier``).

``preprocess`` and ``model_info`` are the contracts that training and conversion share with the
device (one preprocessing path, one label order); ``tflite_runtime`` finds the LiteRT interpreter.
"""
