"""The Dask cluster a distributed run uses: a running scheduler, or a local one for the run.

`settings` is params.yaml's `train.distributed`: `scheduler` names a running cluster
(`tcp://host:8786`); without it a local cluster of `workers` processes is started, each with
`memory_limit` (Dask's "auto" when unset).
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def dask_client(settings: dict):
    """Connect to the configured scheduler, or start a local cluster for the duration."""
    from dask.distributed import Client, LocalCluster

    address = settings.get("scheduler")
    if address:
        with Client(address) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=int(settings.get("workers", 2)),
            threads_per_worker=1,
            processes=True,
            memory_limit=settings.get("memory_limit") or "auto",
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def worker_count(client) -> int:
    """Return the number of workers connected to the scheduler."""
    return len(client.scheduler_info(n_workers=-1)["workers"])
