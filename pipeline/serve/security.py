"""What keeps `ferflow serve` safe to leave running: who may call it, and for how long.

Each limit is named once here, with its reason:
- Host names (`Security.hosts`): only the names the server listens for are answered
  (Starlette's `TrustedHostMiddleware`), so a web page whose domain is re-pointed at
  127.0.0.1 (DNS rebinding) gets 400, not the API.
- Origins: a browser sends `Origin` with every WebSocket and cross-site POST. Only the page
  this server serves (same scheme, host and port) and the origins named with
  `--allow-origin` may post photos or open streams; any other page the user visits while the
  server runs gets 403. Clients that send no `Origin` (curl, scripts) are not browsers
  driven by a foreign page and are answered.
- Streams (`max_streams`): each holds a recognizer of its own (about 75 MB with the shipped
  model at 640x480 on this machine); past the cap a stream is closed at once with code 1013
  and a reason the page shows.
- Time (`header_timeout`, `body_timeout`): a request's header must arrive within 10 s of
  its first byte and its body within 60 s (20 MB at 3 Mbit/s), so a client that trickles
  bytes cannot hold a connection (pipeline/serve/server.py arms the header deadline).
- Response headers (pipeline/serve/guard.py): a Content-Security-Policy that allows only
  this server's own scripts, styles, images and connections, no framing
  (`frame-ancestors 'none'`), `nosniff`, and no referrer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

#: What this machine is called from itself.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class Security:
    """Who may call the server and for how long (the module docstring says why each)."""

    hosts: tuple[str, ...] = LOCAL_HOSTS
    origins: tuple[str, ...] = ()
    max_streams: int = 8
    header_timeout: float = 10.0
    body_timeout: float = 60.0


def listening_hosts(bind: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The host names to answer for a server bound to `bind`: the localhost names, the bound
    address itself, and for a wildcard address (0.0.0.0, ::) this machine's own names and
    addresses; then `extra` (`--allow-host`)."""
    names = list(LOCAL_HOSTS)
    try:
        address = ipaddress.ip_address(bind)
    except ValueError:
        names.append(bind.lower())  # a name, e.g. myhost.local
    else:
        if address.is_unspecified:
            names += _own_names()
        else:
            names.append(f"[{address}]" if address.version == 6 else str(address))
    names += [name.lower() for name in extra]
    return tuple(dict.fromkeys(names))


def _own_names() -> list[str]:
    host = socket.gethostname()
    names = [host.lower(), socket.getfqdn().lower()]
    # A host name the resolver does not know: the names above still count.
    with contextlib.suppress(OSError):
        names += socket.gethostbyname_ex(host)[2]
    return names


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of an origin as given to --allow-origin, checked."""
    match = re.fullmatch(r"(https?)://([^/?#\s]+)/?", url.strip(), flags=re.IGNORECASE)
    if match is None:
        raise ValueError(
            f"{url!r} is not an origin; give scheme, host and port only, e.g. http://localhost:3000"
        )
    return f"{match[1]}://{match[2]}".lower()
