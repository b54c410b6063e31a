"""The exceptions cnnlab raises, each with a message that names the cause and the fix."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain_text(error: object) -> str:
    """An error's text without terminal colour codes (torch puts some in its messages).

    Example:
        >>> plain_text(RuntimeError("\x1b[1mbold\x1b[0m words"))
        'bold words'
    """
    return _ANSI.sub("", str(error))


class CnnlabError(Exception):
    """Base class for every error cnnlab raises on purpose."""


class DataUnavailableError(CnnlabError, RuntimeError):
    """A data set could not be found, downloaded or read."""


class CorruptImageError(CnnlabError, OSError):
    """An image file could not be decoded."""


class InputShapeError(CnnlabError, ValueError):
    """A batch does not have the layout, size or dtype a model expects."""


class LabelError(CnnlabError, ValueError):
    """Labels have the wrong dtype or fall outside ``[0, num_classes)``."""


class NonFiniteInputError(CnnlabError, ValueError):
    """Input images hold NaN or infinite values."""


class ConfigurationError(CnnlabError, ValueError):
    """Options of ``fit`` (or a callback) that contradict each other or cannot work."""


class ImageTransformError(CnnlabError, ValueError):
    """A transform failed on one image (named in the message)."""
