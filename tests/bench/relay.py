#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A delaying TCP relay on loopback: a WAN between a client and a server (stdlib only).

relay.py LISTEN-PORT TARGET-HOST:PORT [DELAY-MS]

Every chunk read on one side is written to the other DELAY-MS later (default 20),
in each direction, in order; so one round trip costs 2 x DELAY-MS.  The kernel's
netem would do this properly; without it the relay imitates the TCP handshake
too: nothing the client sends reaches the server earlier than one round trip
after the client connected (on a real WAN its first byte could not leave
before the SYN-ACK came back).  Prints "ready PORT" once listening.
"""
import asyncio
import sys


async def pump(reader, writer, delay, not_before):
    """Copies reader to writer, each chunk delay seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def sender():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                break
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except OSError:
            pass

    task = asyncio.ensure_future(sender())
    try:
        while True:
            data = await reader.read(65536)
            due = max(loop.time(), not_before) + delay
            await queue.put((due, data or None))
            if not data:
                break
        await task
    except (ConnectionError, OSError):
        task.cancel()
    finally:
        writer.close()


async def handle(client_r, client_w, target, delay):
    loop = asyncio.get_running_loop()
    connected = loop.time()
    try:
        server_r, server_w = await asyncio.open_connection(*target)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(
        pump(client_r, server_w, delay, connected + 2 * delay),   # the handshake's round trip
        pump(server_r, client_w, delay, 0.0),
        return_exceptions=True)


async def main():
    port = int(sys.argv[1])
    host, _, tport = sys.argv[2].rpartition(":")
    delay = float(sys.argv[3] if len(sys.argv) > 3 else 20) / 1000.0
    server = await asyncio.start_server(lambda r, w: handle(r, w, (host, int(tport)), delay),
                                        "127.0.0.1", port, backlog=1024)
    print("ready %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
