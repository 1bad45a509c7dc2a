"""How every ``kofn`` command ends: kofn's one error path and its exit codes.

:func:`run_command` runs a command's function and turns what it raises into the documented
exit status (``docs/errors.md``):

* a :class:`~kofn.core.errors.KofnError` (a user's mistake): one line,
  ``kofn: <what>: <culprit>: <why>``, exit 2;
* an ``OSError`` a user can cause (a full or read-only disk, :data:`kofn.app.outdir.OS_USER_ERRNOS`),
  or a tool that died on a full file system: one ``kofn: system:`` line, exit 2;
* SIGINT or SIGTERM: the children (Verilator, make, g++, simulators) are stopped at once,
  exit 128 + the signal;
* anything else is a bug in kofn: the traceback, a line asking for a report, exit 1.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback

from .. import __version__
from ..core.errors import KofnError

__all__ = ["run_command"]


_BUG = ("kofn: internal error (a bug in kofn {v}, not in your input): please report it with the traceback above, "
        "the command line and the config")


class _Signalled(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread after the children were told to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame):  # noqa: ARG001
    from .outdir import kill_children

    kill_children()  # Verilator, make, g++, the simulator: worker threads waiting on them return now
    # ... and whatever a tool driver starts next (a runner's next command) until kofn exits
    threading.Thread(target=_reap, daemon=True, name="kofn-reaper").start()
    raise _Signalled(signum)


def _reap() -> None:
    import time

    from .outdir import kill_children

    for _ in range(240):
        kill_children()
        time.sleep(0.25)


def run_command(func, args) -> int:
    """``func(args)`` on kofn's one error path: a user error is one line and exit 2; an
    interruption exit 128 + the signal; anything else a traceback, a bug-report line, exit 1."""
    main_thread = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        return func(args)
    except KofnError as e:
        msg = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"kofn: {e.what}: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"kofn: interrupted ({signal.Signals(signum).name}); no build folder was changed and the run's "
              "temporary files were removed", file=sys.stderr)
        return 128 + signum
    except OSError as e:
        if e.errno not in _user_errnos():
            traceback.print_exc()
            print(_BUG.format(v=__version__), file=sys.stderr)
            return 1
        where = e.filename or "a file"
        print(f"kofn: system: {where}: {e.strerror or e}; no build folder was changed", file=sys.stderr)
        return 2
    except Exception:
        from .outdir import low_disk

        full = low_disk()
        if full is not None:  # a tool died writing into a full file system: not kofn's bug
            print(f"kofn: system: {full[0]}: the file system is full ({full[1] / 2**20:.1f} MiB free; a build needs "
                  f"tens of MiB) and {type(sys.exc_info()[1]).__name__} followed; no build folder was changed",
                  file=sys.stderr)
            return 2
        traceback.print_exc()
        print(_BUG.format(v=__version__), file=sys.stderr)
        return 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _user_errnos():
    from .outdir import OS_USER_ERRNOS

    return OS_USER_ERRNOS
