"""PgQueuer (asyncpg driver), driven by the PostgreSQL drain benchmark of signals-outbox
(benches/postgres.rs), which runs this script in a virtual environment of its own:

- ``peer.py URL enqueue N SHARDS``: installs PgQueuer's schema and enqueues ``N`` jobs
  ``{"shard": .., "seq": ..}`` for the entrypoint ``bench``, then exits;
- ``peer.py URL work BATCH``: connects, prints ``ready``, waits for a line on standard input,
  then drains the queue (``QueueExecutionMode.drain``: it exits once the queue is empty and its
  jobs are finished), and prints ``done COUNT``, the jobs it handled.
"""

import asyncio
import json
import sys

import asyncpg
from pgqueuer import AsyncpgDriver, Job, QueueManager, Queries
from pgqueuer.types import QueueExecutionMode

ENTRYPOINT = "bench"
ENQUEUE_CHUNK = 1000
handled = 0


def handle(args):
    """The per-job function: the same work as the floor's and the receiver's."""
    global handled
    handled += 1
    return args["seq"]


async def enqueue(url, n, shards):
    conn = await asyncpg.connect(url)
    queries = Queries(AsyncpgDriver(conn))
    if not await queries.schema_is_installed():
        await queries.install()
    for start in range(0, n, ENQUEUE_CHUNK):
        seqs = range(start, min(n, start + ENQUEUE_CHUNK))
        await queries.enqueue(
            [ENTRYPOINT] * len(seqs),
            [json.dumps({"shard": seq % shards, "seq": seq}).encode() for seq in seqs],
            [0] * len(seqs),
        )
    await conn.close()


async def work(url, batch):
    conn = await asyncpg.connect(url)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint(ENTRYPOINT)
    async def bench(job: Job) -> None:
        handle(json.loads(job.payload))

    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await qm.run(batch_size=batch, mode=QueueExecutionMode.drain)
    print(f"done {handled}", flush=True)


def main():
    url, role = sys.argv[1], sys.argv[2]
    if role == "enqueue":
        asyncio.run(enqueue(url, int(sys.argv[3]), int(sys.argv[4])))
    elif role == "work":
        asyncio.run(work(url, int(sys.argv[3])))
    else:
        sys.exit(f"unknown role {role}")


if __name__ == "__main__":
    main()
