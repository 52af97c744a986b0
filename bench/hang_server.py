#!/usr/bin/env python3
"""A "provider" that accepts TCP connections on 127.0.0.1 and never answers.

Started by bench/driver.py to make provider tests hang until Lanyard's outbound timeout.
Usage: hang_server.py PORT_FILE COUNT_FILE
  PORT_FILE   receives the port it listens on (chosen by the kernel)
  COUNT_FILE  receives the number of connections accepted so far, after every accept
"""

import signal
import socket
import sys


def main() -> None:
    port_file, count_file = sys.argv[1], sys.argv[2]
    # Stopped by the driver (SIGTERM), or by a Ctrl-C that reaches the whole process group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1024)
    with open(port_file, "w") as f:
        f.write(f"{server.getsockname()[1]}\n")
    held = []  # keep every accepted socket open; never read, never write
    while True:
        conn, _ = server.accept()
        held.append(conn)
        with open(count_file, "w") as f:
            f.write(f"{len(held)}\n")


if __name__ == "__main__":
    main()
