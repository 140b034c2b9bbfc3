"""The simulated operator as a device: it watches the sim in-process and speaks over the channel.

:class:`rlpost.sim.SimulatedOperator` decides like a person would; this device forwards its
commands through an :class:`actors.operator_channel.OperatorClient` over zmq, waiting for
each ack, so its commands reach the loop the same way a keyboard's or gamepad's do (and
are in the loop's queue before the next step starts).
"""

from __future__ import annotations

import collections

from actors.operator_channel import OperatorClient
from rlpost.sim import SimulatedOperator


class SimOperatorDevice:
    """A :class:`actors.control_loop.StepObserver` that relays a simulated operator over zmq."""

    def __init__(self, operator: SimulatedOperator, client: OperatorClient) -> None:
        self.operator, self.client = operator, client
        self.sent: collections.Counter[str] = collections.Counter()

    def on_reset(self, obs: dict, info: dict, seed: int | None) -> None:
        self.operator.reset(seed=seed)
        self.operator.observe(obs, info)
        self._flush()

    def on_step(self, obs: dict, info: dict, terminated: bool, truncated: bool) -> None:
        self.operator.observe(obs, info, terminated=terminated, truncated=truncated)
        self._flush()

    def _flush(self) -> None:
        for cmd in self.operator.poll():
            self.client.send(
                cmd
            )  # raises OperatorRefused / TimeoutError: a device that cannot speak is a bug
            self.sent[cmd.kind] += 1

    def close(self) -> None:
        self.client.close()
