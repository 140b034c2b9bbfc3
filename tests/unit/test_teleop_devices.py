"""Teleop devices: key and button mappings, and a clear error when no gamepad is connected."""

from __future__ import annotations

import numpy as np
import pytest

from actors.devices.gamepad import DeviceNotFound, GamepadMapper, open_gamepad
from actors.devices.keyboard import KeyboardMapper


def test_keyboard_keys_send_commands_and_motion_keys_stream_an_action_that_decays():
    m = KeyboardMapper(action_dim=3, speed=0.5, hold_s=0.2)
    assert m.on_key("t", 0.0) == ["take_over"] and m.in_control
    assert m.on_key("l", 0.0) == [] and m.on_key("i", 0.0) == [] and m.on_key("g", 0.0) == []
    np.testing.assert_allclose(m.action(0.1), [0.5, 0.5, 1.0])
    np.testing.assert_allclose(m.action(0.3), [0.0, 0.0, 1.0])  # keys released: stop, grip stays
    assert m.on_key("p", 0.3) == ["pause"] and m.on_key("p", 0.4) == ["resume"]
    assert m.on_key(" ", 0.5) == ["estop"] and not m.in_control


def test_gamepad_buttons_are_edge_triggered_and_sticks_have_a_deadzone():
    m = GamepadMapper(action_dim=3)
    assert m.commands([True, False]) == ["take_over"]
    assert m.commands([True, False]) == []  # still held: no repeat
    assert m.commands([False, True]) == ["hand_back"]
    np.testing.assert_allclose(m.action([0.05, -0.5, 0, 0, 0, 1.0]), [0.0, 0.5, 1.0])


def test_no_gamepad_is_a_clear_error_not_a_silent_device():
    with pytest.raises(DeviceNotFound, match="pygame sees 0 joystick"):
        open_gamepad(0)
