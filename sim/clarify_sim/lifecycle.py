"""Parts shared by the long-running simulator processes: event log and stop flag."""

from __future__ import annotations

import json
import logging
import signal
import time
from typing import Any, TextIO

logger = logging.getLogger(__name__)


class EventLog:
    """JSON-lines record of what a process did, one object with an ``event`` key a line.

    The demo orchestrator reads these files to build its per-cycle table.
    """

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def write(self, event: str, **details: Any) -> None:
        """Append one event with the wall-clock time in Unix seconds."""
        if self._stream is None:
            return
        record = {"event": event, "time": time.time(), **details}
        self._stream.write(json.dumps(record) + "\n")
        self._stream.flush()


class StopFlag:
    """Set by SIGTERM or SIGINT, so that loops end between steps."""

    def __init__(self) -> None:
        self.stopped = False

    def install(self) -> None:
        """Handle SIGTERM and SIGINT by setting the flag."""
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signal_number, self._handle)

    def _handle(self, signal_number: int, _frame: Any) -> None:
        logger.info("received signal %d; stopping", signal_number)
        self.stopped = True
