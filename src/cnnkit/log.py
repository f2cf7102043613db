"""The package logger: warnings reach stderr even when nobody configured logging."""

import logging

LOGGER = logging.getLogger("cnnkit")
