"""How many CPU threads a run computes with (`run.threads`), and DataLoader workers kept to one.

torch's default is one intra-op thread per core of the machine, whether or not the process may
use them; on a machine shared with other jobs, or with DataLoader workers decoding images beside
it, the threads then wait on each other (a run measured 4x slower with 2 threads than with 1).
"""
from __future__ import annotations

import os
import signal
from typing import Union

import torch


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a cgroup, taskset or a scheduler's
    allocation), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without affinity (macOS)
        return os.cpu_count() or 1


# torch's own choice when this module is imported: the physical cores, or OMP_NUM_THREADS when set
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def resolve_threads(setting: Union[int, str]) -> int:
    """`run.threads`: a number as given; 'auto' shares the usable cores among the processes
    torchrun started on this machine (LOCAL_WORLD_SIZE), at least one each, and takes no more than
    torch would (so OMP_NUM_THREADS still counts, and hyper-threads are not doubled up)."""
    if setting != "auto":
        return int(setting)
    share = usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(share, TORCH_DEFAULT_THREADS))


def apply_threads(setting: Union[int, str], workers: int) -> str:
    """Set torch's intra-op threads from `run.threads`; returns the line the run's header shows."""
    threads = resolve_threads(setting)
    torch.set_num_threads(threads)
    loaders = f"{workers} DataLoader worker(s) of 1 thread each" if workers else "no DataLoader workers"
    return (f"threads: {threads} intra-op (run.threads={setting}; {usable_cores()} core(s) usable by this process), "
            f"{loaders} (train.workers)")


def init_loader_worker(worker_id: int) -> None:
    """A DataLoader worker computes with one thread (several workers with torch's default of one
    thread per core would fight over the cores), and leaves SIGINT / SIGTERM to the main process,
    which stops the run at a step boundary: a worker that died on Ctrl-C would fail the batch the
    last step still needs."""
    torch.set_num_threads(1)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
