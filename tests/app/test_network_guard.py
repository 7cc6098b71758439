import socket

import pytest

from tests.helpers import REFUSED, NetworkAccessError

pytestmark = pytest.mark.fast


def test_non_loopback_connection_is_refused():
    with socket.socket() as sock, pytest.raises(NetworkAccessError):
        sock.connect(("93.184.216.34", 80))
    assert REFUSED.pop() == ("93.184.216.34", 80)  # recorded, then forgotten: it was on purpose


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.socket() as client:
            client.connect(server.getsockname())
