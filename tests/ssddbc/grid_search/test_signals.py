"""A signal that arrives inside a callback Python cannot raise from is not lost.

The handler raises :class:`Interrupted`; inside a weak reference's callback Python would
print "Exception ignored" and go on, so a SIGTERM from a scheduler could be dropped. Within
``interruptible()`` the exception is kept and ``check_interrupted()`` raises it. The signals
are real (``os.kill`` of this process); the handler runs inside the callback.
"""

from __future__ import annotations

import os
import signal
import sys
import weakref

import pytest

from ssddbc.grid_search._signals import Interrupted, check_interrupted, interruptible


class _Target:
    pass


def _signal_inside_callback(sig: int) -> list[str]:
    """Drop the last reference of an object whose weakref callback receives ``sig``."""
    steps: list[str] = []

    def callback(_ref: object) -> None:
        os.kill(os.getpid(), sig)
        for _ in range(10_000):  # bytecode boundaries: the handler runs here
            pass
        steps.append("callback finished")  # pragma: no cover - the handler raised

    obj = _Target()
    ref = weakref.ref(obj, callback)
    del obj
    steps.append("went on")
    assert ref() is None
    return steps


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_swallowed_interrupt_is_raised_at_the_next_check(
    sig: int, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Interrupted) as info, interruptible():
        steps = _signal_inside_callback(sig)
        assert steps == ["went on"]  # the callback was cut short, the code went on
        check_interrupted()
    assert info.value.signum == sig
    assert "Exception ignored" not in capfd.readouterr().err
    check_interrupted()  # raised once, then forgotten


def test_the_hook_is_restored_and_other_unraisables_pass_through() -> None:
    before = sys.unraisablehook
    seen: list[BaseException | None] = []
    sys.unraisablehook = lambda u: seen.append(u.exc_value)
    try:
        with interruptible():
            obj = _Target()
            ref = weakref.ref(obj, lambda _r: 1 / 0)
            del obj
            assert ref() is None
            check_interrupted()  # nothing to raise
        assert len(seen) == 1 and isinstance(seen[0], ZeroDivisionError)
    finally:
        sys.unraisablehook = before
    with interruptible():
        pass
    assert sys.unraisablehook is before


def test_a_swallowed_interrupt_is_raised_when_the_block_ends() -> None:
    finished = []
    with pytest.raises(Interrupted) as info, interruptible():
        _signal_inside_callback(signal.SIGTERM)
        finished.append(True)  # no check in the block: it runs to its end
    assert finished == [True]
    assert info.value.signum == signal.SIGTERM
