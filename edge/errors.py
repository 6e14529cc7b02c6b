"""One exception hierarchy for the device package.

Adapters (OpenCV, LiteRT, paho, picamera2, file I/O) translate library errors into these at the
boundary (``raise ... from exc``), so callers catch one type and the CLI maps each to an exit code.
"""


class EmocamError(Exception):
    """Base class of every error emocam raises on purpose. Its message is for the user."""

    exit_code = 1


class ConfigError(EmocamError):
    """Bad configuration: names the dotted key, the bad value and what is allowed."""

    exit_code = 2


class ModelError(EmocamError):
    """Missing, corrupt or inconsistent model file or sidecar."""

    exit_code = 3


class SourceError(EmocamError):
    """A frame source could not be opened or read."""

    exit_code = 4


class DetectorError(EmocamError):
    """The face detector could not be built (missing weights, unsupported OpenCV)."""

    exit_code = 5


class PublishError(EmocamError):
    """The event publisher could not be set up (bad broker URL, unreadable TLS files)."""

    exit_code = 6


class DeliveryError(EmocamError):
    """A file was processed but some of its events never reached the broker.

    Not a setup problem (that is PublishError, 6): the run happened and its results exist, but the
    broker was away, refused them or did not acknowledge them in time. Run the file again once the
    broker is back. A camera never exits with this: it logs what it lost and exits 0 on a stop.
    """

    exit_code = 7
