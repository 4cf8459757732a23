"""Run `villagewatch` commands in tests.

Commands call asyncio.run(); doing that on pytest's own thread orphans pytest-asyncio's event loop
(a ResourceWarning, an error here), so each command runs on a thread of its own, as it would in a shell.
"""

from __future__ import annotations

import threading

from bot.cli import main


def run_cli(*args: str) -> int:
    result: list[int] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(main(list(args)))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
