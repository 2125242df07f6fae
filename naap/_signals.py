"""SIGINT and SIGTERM, handled the same way by every command: both stop it as Ctrl-C does, and
the exit code is the shell's 128 + the signal's number. SIGHUP (a closed terminal) is handled as
SIGTERM where a command asks for it (naap leaderboard, whose workers must not be orphaned)."""
from __future__ import annotations

import signal
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt: every command stops the same way."""
    signum = signal.SIGTERM


class HungUp(Terminated):
    """SIGHUP, handled as SIGTERM."""
    signum = signal.SIGHUP


def raise_interrupt(signum, frame):
    raise {signal.SIGTERM: Terminated, signal.SIGHUP: HungUp}.get(signum, KeyboardInterrupt)()


@contextmanager
def signals_handled(handler):
    """Inside, SIGINT and SIGTERM call `handler(signum, frame)`; after, the previous handlers are back."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, restored in previous.items():
            signal.signal(s, restored)


@contextmanager
def signals_held():
    """SIGINT and SIGTERM wait while the command's modules are imported, and are taken right
    after: an interrupt inside a library's import can leave it half-imported (some libraries
    catch every exception there), and the command would then fail with a confusing traceback."""
    received = []
    with signals_handled(lambda signum, frame: received.append(signum)):
        yield
    if received:
        raise_interrupt(received[0], None)


def interrupt_exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process ended by it: 130 (SIGINT), 143 (SIGTERM),
    129 (SIGHUP)."""
    return 128 + (interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT)


def interrupt_name(interrupt: KeyboardInterrupt) -> str:
    return signal.Signals(interrupt.signum).name if isinstance(interrupt, Terminated) else "SIGINT"
