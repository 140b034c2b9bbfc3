"""Policy inference off the control thread, and head-weight updates between chunks.

The control loop submits an observation and polls for the chunk; it never blocks on the
model except where it chooses to wait (the first chunk of an episode, or simulated time).
Before each inference the worker asks its :class:`rlpost.interfaces.WeightSource` for a
newer head and loads it, so weights change only between chunks and the policy object is
only ever touched by the worker thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from rlpost.interfaces import Policy, WeightSource
from rlpost.schema import Observation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceResult:
    """One finished request: a chunk, or the error the policy raised."""

    request_id: int
    origin_step: int  # the control step whose observation was used
    chunk: np.ndarray | None  # float32 [H, A]; None when error is set
    version: int  # head version that computed it
    latency_s: float
    error: str = ""  # "<ExceptionType>: message" when the policy failed
    noise: np.ndarray | None = None  # float32 [H, A], the flow's initial noise, from policies that say


class InferenceWorker:
    """A background thread that runs ``policy.act``; one request in flight at a time."""

    def __init__(self, policy: Policy, source: WeightSource | None = None, name: str = "inference") -> None:
        """Args:
        policy: a Policy; with ``source`` it must also have ``load_head(state, version)``.
        source: where newer head weights come from (polled before each inference).
        name: thread name, for logs.

        Raises:
            TypeError: a weight source for a policy that cannot load heads.
        """
        if source is not None and not callable(getattr(policy, "load_head", None)):
            raise TypeError(
                f"{type(policy).__name__} has no load_head(state, version); cannot take new weights"
            )
        self.policy, self.source = policy, source
        self.version = int(policy.version)  # written by the worker thread only
        self.weight_loads = 0
        self.weight_errors = 0
        self.policy_errors = 0
        self._failed_versions: set[int] = set()
        self._requests: queue.Queue = queue.Queue()
        self._results: queue.Queue = queue.Queue()
        self._next_id = 0
        self._epoch = 0
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A request is in flight (its result not yet polled)."""
        return self._busy

    def submit(self, obs: Observation, step: int) -> int:
        """Queue ``obs`` for inference.

        Raises:
            RuntimeError: a request is already in flight, or the worker is closed.
        """
        if self._closed:
            raise RuntimeError("InferenceWorker.submit after close()")
        if self._busy:
            raise RuntimeError("InferenceWorker.submit while a request is in flight; poll() it first")
        self._next_id += 1
        self._busy = True
        self._requests.put((self._epoch, self._next_id, step, obs))
        return self._next_id

    def poll(self) -> InferenceResult | None:
        """The finished result of the current request, if ready (never blocks)."""
        return self.wait(0.0)

    def wait(self, timeout_s: float) -> InferenceResult | None:
        """Wait up to ``timeout_s`` for the current request's result."""
        deadline = time.monotonic() + timeout_s
        while self._busy:
            remaining = deadline - time.monotonic()
            try:
                epoch, result = (
                    self._results.get(timeout=remaining) if remaining > 0 else self._results.get_nowait()
                )
            except queue.Empty:
                return None
            if epoch == self._epoch:
                self._busy = False
                return result
        return None

    def cancel(self) -> None:
        """Drop the in-flight request's result (its episode ended); the next submit is fresh."""
        self._epoch += 1
        self._busy = False

    def close(self, timeout_s: float = 5.0) -> None:
        self._closed = True
        self._requests.put(None)
        self._thread.join(timeout_s)

    # -- worker thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._requests.get()
            if item is None:
                return
            epoch, rid, step, obs = item
            self._maybe_update_weights()
            t0 = time.perf_counter()
            try:
                noise = None
                if hasattr(self.policy, "act_with_noise"):  # a sampling policy says what it sampled from
                    raw, raw_noise = self.policy.act_with_noise(obs)
                    noise = np.asarray(raw_noise, dtype=np.float32)
                else:
                    raw = self.policy.act(obs)
                chunk = np.asarray(raw, dtype=np.float32)
                if chunk.ndim != 2 or (noise is not None and noise.shape != chunk.shape):
                    raise ValueError(
                        f"policy returned shape {chunk.shape} (noise {None if noise is None else noise.shape}), "
                        "expected a chunk [H, A]"
                    )
                result = InferenceResult(
                    rid, step, chunk, self.version, time.perf_counter() - t0, noise=noise
                )
            except Exception as e:  # reported to the loop, which holds and records the error
                self.policy_errors += 1
                log.exception(
                    "policy %s failed on the observation of step %d", type(self.policy).__name__, step
                )
                result = InferenceResult(
                    rid, step, None, self.version, time.perf_counter() - t0, f"{type(e).__name__}: {e}"
                )
            self._results.put((epoch, result))

    def _maybe_update_weights(self) -> None:
        if self.source is None:
            return
        latest = -1
        try:
            latest = int(self.source.latest_version())
            if latest <= self.version or latest in self._failed_versions:
                return
            state = self.source.fetch(latest)
            self.policy.load_head(state, latest)  # type: ignore[attr-defined]
        except Exception:
            # A bad head must not stop the robot mid-episode: keep the old weights, count and log
            # it loudly, and do not retry the same version (status reports weight_errors).
            self.weight_errors += 1
            self._failed_versions.add(latest)
            log.exception(
                "could not load head weights from %s; keeping version %d", self.source, self.version
            )
            return
        self.version = latest
        self.weight_loads += 1
        log.info("loaded head weights version %d", latest)
