"""SIGINT, SIGTERM and SIGHUP, handled the same way by every command: each stops it as Ctrl-C
does, and the exit code is the shell's 128 + the signal's number. SIGHUP (the terminal closed)
stops a command as SIGTERM does, unless it is ignored (`nohup`), which is kept."""
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


def handled_signals() -> tuple[int, ...]:
    """SIGINT, SIGTERM, and SIGHUP unless the process ignores it (started under `nohup`)."""
    hangup = () if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else (signal.SIGHUP,)
    return (signal.SIGINT, signal.SIGTERM, *hangup)


@contextmanager
def signals_handled(handler):
    """Inside, the handled_signals call `handler(signum, frame)`; after, the previous handlers are back."""
    previous = {s: signal.signal(s, handler) for s in handled_signals()}
    try:
        yield
    finally:
        for s, restored in previous.items():
            signal.signal(s, restored)


@contextmanager
def signals_held():
    """SIGINT, SIGTERM and SIGHUP wait while the command's modules are imported, and are taken right
    after: an interrupt inside a library's import can leave it half-imported (some libraries
    catch every exception there), and the command would then fail with a confusing traceback."""
    received = []
    with signals_handled(lambda signum, frame: received.append(signum)):
        yield
    if received:
        raise_interrupt(received[0], None)


def interrupt_signal(interrupt: KeyboardInterrupt) -> signal.Signals:
    """The signal that raised `interrupt`: SIGHUP, SIGTERM or SIGINT."""
    return signal.Signals(interrupt.signum) if isinstance(interrupt, Terminated) else signal.SIGINT


def interrupt_exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process ended by it: 129 (SIGHUP), 130 (SIGINT),
    143 (SIGTERM)."""
    return 128 + interrupt_signal(interrupt)
