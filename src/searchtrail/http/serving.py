"""``searchtrail serve`` under uvicorn, with a shutdown that answers every request it read.

On SIGTERM uvicorn closes the listener, lets the requests in flight finish, runs the
app's lifespan shutdown (which commits what the writer holds and closes the storage)
and exits. Left as it is, it also closes every keep-alive connection that is idle at
that instant; a client may have sent its next request on it a moment before, and that
request is lost without an answer. So here:

- An idle connection stays open. The next request on it is answered, with
  ``Connection: close``, and the connection closes after it; one that stays idle closes
  when its keep-alive timeout runs out, as it would have anyway.
- Every response after shutdown began says ``Connection: close`` (``draining``), so no
  client sends another request on a connection about to close.
- ``shutdown_grace_s`` bounds the wait (uvicorn's ``timeout_graceful_shutdown``): past
  it, what still runs is cancelled, and the lifespan closes the storage.
- With ``--workers`` above 1 the supervisor waits up to a minute for a worker to answer
  its ping before it kills and replaces it: a worker only slow to answer on a loaded
  machine must not be killed with the requests it holds.
- With ``--workers`` above 1 the supervisor shuts the listening socket down for all
  workers at once before it signals them: each reacts at its next tick, and a client
  whose connection one worker closed would otherwise reconnect to another still
  listening and be reset when that one closed too.

What "every request gets an answer" means: every request whose bytes a worker read
(on a connection it accepted) gets a complete HTTP response. A connection attempted
after the listener closed is refused before anything is sent; the client may retry it
elsewhere. One the kernel completed in the instant between the last accept and the
close of the listener is reset, also before the application read anything of it.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from searchtrail.http.draining import draining
from searchtrail.settings import Settings

__all__ = ["DrainingHttpProtocol", "run"]

_APP = "searchtrail.http.app:create_app_from_env"
_WORKER_PING_TIMEOUT_S = 60


class DrainingHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, but a graceful shutdown never closes a connection
    whose client may be sending a request (see the module's docstring)."""

    _receiving = False  # a request's head has begun to arrive, not yet all of it

    def on_message_begin(self) -> None:
        self._receiving = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._receiving = False
        super().on_headers_complete()
        if draining.is_set() and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with Connection: close, then closed

    def shutdown(self) -> None:
        draining.set()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        elif self.timeout_keep_alive_task is None and not self._receiving:
            # Idle and never used: close when the keep-alive timeout runs out, unless a
            # request comes first. After a response the timer already runs.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )


class _Supervisor(Multiprocess):
    def terminate_all(self) -> None:
        # Stop the listening socket itself, for every worker at once, before any of them
        # drains: each worker reacts to SIGTERM at its next tick, and a client whose
        # connection one worker closed would reconnect to another still listening, only
        # to be reset when that one closed too. After this the kernel refuses new
        # connections; our copy closes, and the workers' with them.
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        super().terminate_all()


def run(settings: Settings, log_config: dict[str, Any] | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C, then shut down as the module's docstring says;
    ``log_config`` is uvicorn's (``logs.uvicorn_log_config``), None for its default."""
    config = uvicorn.Config(
        _APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=LOGGING_CONFIG if log_config is None else log_config,
        access_log=False,
        http=DrainingHttpProtocol,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        timeout_worker_healthcheck=_WORKER_PING_TIMEOUT_S,
    )
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            _Supervisor(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE)  # the app or the socket failed, as uvicorn.run exits
