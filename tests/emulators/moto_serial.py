"""moto server that applies one request at a time.

moto's DynamoDB mutates items without locking, so concurrent requests lose updates (198 of 200
concurrent ADDs) and concurrent conditional puts can both win: DynamoDB itself applies each
request atomically. Holding one lock around every request restores that atomicity, so tests of
concurrent redelivery check weir, not moto's races. Connections stay concurrent (threaded
server, keep-alive works); only the handling of requests is serialised.

    python moto_serial.py HOST PORT
"""

import os
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serial(environ, start_response):
        with lock:
            # Consume the response inside the lock: the request is done when it is sent.
            return list(app(environ, start_response))

    run_simple(host, port, serial, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
