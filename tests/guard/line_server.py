"""A line server for the adaptive-limit tests, run in its own process:
`python line_server.py WORKERS CAPACITY MILLISECONDS`.

It works on WORKERS requests at a time (MILLISECONDS each) and queues the rest; past CAPACITY requests in
the house it is overloaded and answers "busy". It prints its port, then serves until stdin closes.
`get` asks for work; `stats` answers "busy=N peak=N" and starts counting afresh.
"""

from __future__ import annotations

import asyncio
import sys


class LineServer:
    def __init__(self, workers: int, capacity: int, seconds: float) -> None:
        self.workers = asyncio.Semaphore(workers)
        self.seconds = seconds
        self.capacity = capacity
        self.inside = 0
        self.busy = 0
        self.peak = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(10_000_000):
                line = await reader.readline()
                if not line:
                    return
                if line == b"stats\n":
                    writer.write(f"busy={self.busy} peak={self.peak}\n".encode())
                    self.busy = self.peak = 0
                else:
                    writer.write(await self.work())
                await writer.drain()
        except ConnectionError:
            return
        finally:
            writer.close()

    async def work(self) -> bytes:
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        try:
            if self.inside > self.capacity:
                self.busy += 1
                return b"busy\n"
            async with self.workers:
                await asyncio.sleep(self.seconds)
            return b"ok\n"
        finally:
            self.inside -= 1


async def main(workers: int, capacity: int, millis: int) -> None:
    line_server = LineServer(workers, capacity, millis / 1000)
    server = await asyncio.start_server(line_server.serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the test closes our stdin
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
