"""Where extraction work runs: in this process, or on Dask (a local cluster of processes or an
existing ``dask.distributed`` scheduler).

pfs does not schedule work itself. The pipeline cuts the cohort into tasks (batches of patients for
the text sources, single MRI studies for imaging) and hands them to a runner; results are put back
in patient order, so what comes out does not depend on the runner or the number of workers.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from pfs.exceptions import ConfigError

log = logging.getLogger(__name__)

#: Environment of local Dask worker processes: one thread each for every numeric library, so N
#: workers use N cores (SimpleITK/ITK would otherwise start a thread per core in every worker).
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
}


class Runner(Protocol):
    """Runs ``fn`` on each item; yields ``(index, result or exception)`` in completion order.

    ``items`` may be a generator: it is consumed only a few items ahead of the workers, so a task's
    input (a batch of patients' rows) exists only while the task is queued or running.
    """

    workers: int

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


class InProcessRunner:
    """The plain path: one item after the other in this process (tests, small cohorts, debugging)."""

    workers = 1

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            try:
                yield i, fn(item)
            except Exception as err:  # the caller decides what a failed task means
                yield i, err

    def close(self) -> None:
        pass


#: Loggers of the cluster machinery, kept off the console unless --verbose.
_LIBRARY_LOGGERS = ("distributed", "dask", "tornado", "asyncio")


class DaskRunner:
    """Tasks on a ``dask.distributed`` cluster: a local one of ``workers`` processes, or ``scheduler``."""

    def __init__(self, workers: int = 2, scheduler: str | None = None) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as err:  # pragma: no cover - dask is a core dependency of the install
            raise ConfigError("parallel extraction needs dask[distributed]: pip install 'pfs[dask]'") from err
        self._cluster = None
        self._quiet = not logging.getLogger().isEnabledFor(logging.INFO)
        if self._quiet:
            # distributed configures its own loggers at INFO on import ("Register worker ..."): a user
            # who did not ask for --verbose sees warnings and errors only.
            for name in _LIBRARY_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="30s")
            except OSError as err:
                raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from err
            self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        else:
            import dask

            # Worker processes configure their logging from the environment when they import distributed.
            env = {**WORKER_ENV, "DASK_LOGGING__DISTRIBUTED": "error"} if self._quiet else WORKER_ENV
            with dask.config.set({"distributed.nanny.pre-spawn-environ": env,
                                  "distributed.worker.daemon": False}):
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                             dashboard_address=None,
                                             silence_logs=logging.CRITICAL if self._quiet else logging.WARNING)
            self.client = Client(self._cluster)
            self.workers = workers
        # Tasks queued ahead of the workers: enough to keep them busy, few enough to bound memory.
        self.window = 3 * self.workers + 2

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        from dask.distributed import as_completed

        pending = enumerate(items)
        index: dict[str, int] = {}
        queue = as_completed()

        def submit_next() -> None:
            nxt = next(pending, None)
            if nxt is not None:
                future = self.client.submit(fn, nxt[1], pure=False)
                index[future.key] = nxt[0]
                queue.add(future)

        for _ in range(self.window):
            submit_next()
        for future in queue:
            i = index.pop(future.key)
            try:
                yield i, future.result()
            except Exception as err:  # includes KilledWorker: a crashed worker process
                yield i, err
            future.release()
            submit_next()

    def close(self) -> None:
        """Client first, then the workers, then the scheduler: no worker is left sending to a closed comm.

        The results are all in by now; what the cluster logs while it goes down (a comm closed in
        flight, a heartbeat refused) is not the user's concern, so it is hidden unless --verbose.
        """
        levels = {name: logging.getLogger(name).level for name in _LIBRARY_LOGGERS}
        if self._quiet:
            for name in _LIBRARY_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            if self._cluster is not None:
                with contextlib.suppress(Exception):
                    self.client.retire_workers(close_workers=True)
            self.client.close(timeout=30)
            if self._cluster is not None:
                self._cluster.close(timeout=30)
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def default_workers() -> int:
    """The machine's cores available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LazyRunner:
    """A Dask runner started on the first task (a rerun served entirely from the cache starts no
    cluster), or in the background from :meth:`prestart` while the export is still being read."""

    def __init__(self, workers: int, scheduler: str | None) -> None:
        self.workers = workers
        self._scheduler = scheduler
        self._runner: DaskRunner | None = None
        self._starting: threading.Thread | None = None
        self._failed: BaseException | None = None

    def prestart(self) -> None:
        """Start the cluster in a background thread: worker processes take seconds to spawn and import
        pfs, time the main process spends reading and staging the export."""
        if self._runner is None and self._starting is None:
            self._starting = threading.Thread(target=self._start, name="pfs-dask-start", daemon=True)
            self._starting.start()

    def _start(self) -> None:
        try:
            self._runner = DaskRunner(self.workers, self._scheduler)
        except BaseException as err:  # handed to the caller of map()
            self._failed = err

    def _ready(self) -> DaskRunner:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed
        if self._runner is None:
            self._runner = DaskRunner(self.workers, self._scheduler)
        self.workers = self._runner.workers
        return self._runner

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        items = iter(items)
        first = next(items, None)
        if first is None:
            return iter(())
        return self._ready().map(fn, itertools.chain([first], items))

    def close(self) -> None:
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            runner.close()


def make_runner(workers: int = 1, scheduler: str | None = None) -> Runner:
    """A runner for ``workers`` local processes (1 = in this process) or an existing scheduler."""
    if workers < 0:
        raise ConfigError(f"--workers must be 0 (all cores) or more, not {workers}")
    if scheduler:
        return LazyRunner(workers or 1, scheduler)
    workers = workers or default_workers()
    return InProcessRunner() if workers == 1 else LazyRunner(workers, None)
