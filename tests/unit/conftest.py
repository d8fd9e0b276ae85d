"""Unit tests do no I/O: network sockets are off (unix socketpairs stay, asyncio needs them)."""

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network() -> object:
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
