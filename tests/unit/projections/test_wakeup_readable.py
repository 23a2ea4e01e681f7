"""The wake-up listener waits on its sockets with a selector: a busy process has descriptors
above 1023, which `select.select` refuses (it stopped the listener in a full test run)."""

from __future__ import annotations

import os
import socket

from cityops.storage import readable


def test_a_descriptor_above_1023_is_waited_on() -> None:
    sender, receiver = socket.socketpair()
    high = os.dup2(receiver.fileno(), 1500)
    try:
        assert readable([high], 0.01) == set()
        sender.send(b"x")
        assert readable([high], 1.0) == {high}
    finally:
        os.close(high)
        sender.close()
        receiver.close()
