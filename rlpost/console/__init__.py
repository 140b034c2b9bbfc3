"""The operator console: a web page that shows every robot of a practice session and sends commands.

``rlpost practice`` serves it (``console.enabled=true``); ``rlpost console session=<dir>``
prints the address of a running session's console. The page speaks to a
:class:`~rlpost.console.view.ConsoleBackend` (the session's side lives in
``rlpost.session_console``); commands go to each robot's operator channel, the same wire
messages a teleop device sends.
"""

from rlpost.console.config import ConsoleAttachConfig, ConsoleConfig
from rlpost.console.server import ConsoleServer, read_console_file
from rlpost.console.view import (
    CONSOLE_COMMANDS,
    Alert,
    CommandResult,
    ConsoleBackend,
    ConsoleView,
    RobotView,
    SessionView,
)

__all__ = [
    "CONSOLE_COMMANDS",
    "Alert",
    "CommandResult",
    "ConsoleAttachConfig",
    "ConsoleBackend",
    "ConsoleConfig",
    "ConsoleServer",
    "ConsoleView",
    "RobotView",
    "SessionView",
    "read_console_file",
]
