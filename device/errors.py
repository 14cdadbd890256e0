"""One root exception; specific errors also inherit the builtin they refine.

The CLI turns any ``FocusAssistError`` into one line on stderr and exit status 2.
"""


class FocusAssistError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(FocusAssistError, ValueError):
    """A configuration file, key or value is wrong."""


class InputError(FocusAssistError, ValueError):
    """An image, video, ROI or source spec given by the user cannot be used."""


class SourceError(FocusAssistError, RuntimeError):
    """A frame source failed while running (camera fault, stream ended badly)."""


class ModelError(FocusAssistError, RuntimeError):
    """A model file is missing, corrupt or does not match what the code expects."""


class MotorError(FocusAssistError, RuntimeError):
    """A focus motor could not be driven as asked."""
