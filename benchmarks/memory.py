"""Peak memory of the current process, as the benchmarks report it."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (VmHWM on Linux).

    Not ``getrusage().ru_maxrss``: Linux carries it across ``fork``/``exec``, so a case
    started by a runner that once held more memory (e.g. while generating the data) reports
    the runner's peak instead of its own (seen: every case of a run showing the same 656 MB).
    ``VmHWM`` belongs to the memory map ``exec`` created.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
