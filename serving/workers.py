"""The gunicorn worker class of the service: gevent's, closing connections as the sync worker does.

gunicorn's sync and gthread workers close a connection gracefully: they half-close it and read
what the client still sends (at most 64 KiB, 2 s) before the socket goes, so an answer given
before the whole request was read (413 for a body over the limit) reaches the client instead of
being cut off by a reset. Its async workers close at once; this worker does the same as the sync
worker whenever an answer ends the connection.
"""

from __future__ import annotations

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker as _GeventWorker


class GeventWorker(_GeventWorker):
    def handle_request(self, listener_name, req, sock, addr):
        try:
            return super().handle_request(listener_name, req, sock, addr)
        except StopIteration:  # the answer closes the connection: linger, then close
            util.close_graceful(sock)
            raise
