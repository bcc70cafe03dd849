"""What can go wrong with one device, phrased for the person wearing it."""

from __future__ import annotations

from typing import Literal

from twitchwatch.errors import TwitchwatchError

Step = Literal["scan", "connect", "services", "start", "stream", "stop"]


class DeviceStepError(TwitchwatchError):
    """One step with one device failed. The message names the device, the step and what to do; the
    collector logs it and tries again with backoff (one device never stops the others)."""

    def __init__(self, device: str, step: Step, reason: str, advice: str) -> None:
        super().__init__(f"{device}: {step} failed: {reason}. {advice}")
        self.device = device
        self.step = step
        self.reason = reason
        self.advice = advice


class Disconnected(TwitchwatchError):
    """The link dropped (the device went out of range, was switched off, or dropped it)."""
