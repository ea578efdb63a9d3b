"""Retry policy: exponential backoff with jitter, bounded by attempts and elapsed time.

The policy is a value; it decides, it does not sleep. The driver passes in how many
attempts were made, how long they took and a random sample, so the decision is a pure
function and is tested without clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the client retries an operation that failed with an *unknown outcome*.

    Only :class:`~coord.ConnectionLossError` and :class:`~coord.OperationTimeoutError`
    (the request may or may not have been applied) and
    :class:`~coord.ThrottledOpError` (it was not) are retried, and only for operations
    that are safe to repeat -- see "Retries" in ``docs/client.md`` for the list. Before
    each retry the client waits ``backoff(n)`` and then for the connection to come back;
    if the session is lost meanwhile, :class:`~coord.SessionExpiredError` ends the retries.

    Args:
        max_attempts: attempts in all, the first included (1 disables retries).
        max_elapsed: seconds after the first attempt at which no new attempt starts.
        initial_delay: backoff before the first retry, in seconds.
        max_delay: cap of the backoff.
        multiplier: growth of the backoff per retry.
        jitter: fraction of the backoff drawn at random (0: none, 1: "full jitter"), so
            that clients cut off together do not retry in lockstep.
    """

    max_attempts: int = 10
    max_elapsed: float = 60.0
    initial_delay: float = 0.05
    max_delay: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_elapsed < 0 or self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("times must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes one attempt only."""
        return cls(max_attempts=1)

    def allows(self, attempts: int, elapsed: float) -> bool:
        """Whether another attempt may start after ``attempts`` failed ones.

        Args:
            attempts: attempts made so far.
            elapsed: seconds since the first attempt started.
        """
        return attempts < self.max_attempts and elapsed < self.max_elapsed

    def backoff(self, retry: int, sample: float) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry).

        Args:
            retry: which retry this is, from 1.
            sample: a random number in ``[0, 1)`` drawn by the caller.
        """
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, retry - 1))
        return base * (1.0 - self.jitter * sample)
