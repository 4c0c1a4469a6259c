"""One thread, blocked in socket.recv between requests; never imports pyliveupdate.

Each request is a number n (or "state"); the reply is reply(n) (or the state line).
"""
import os
import socket

from state import state


def reply(n):
    doubled = n * 2
    return doubled + 1


server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(8)
print("listening", server.getsockname()[1], "pid", os.getpid(), flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        while True:
            data = conn.recv(100)
            if not data:
                break
            text = data.decode().strip()
            conn.sendall((state() if text == "state" else str(reply(int(text)))).encode() + b"\n")
