"""A listening socket on the loopback interface, for the servers the project runs on this
machine itself (the scenario runner's, the fake Deepgram's)."""

from __future__ import annotations

import socket
from collections.abc import Iterable


def listening_socket(ports: Iterable[int]) -> socket.socket | None:
    """Bound and listening on 127.0.0.1 at the first of `ports` that binds; None if none
    does. The bind itself is the claim: probing a port and binding it later lets two
    processes that probed at once end up sharing a server."""
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(128)
        return sock
    return None
