"""What the in-process CPU benches share (writer_cpu.py, ingest_cpu.py,
sentry_cpu.py): loading copies of errorcapture.py from other commits side by
side, and reading one thread's own CPU clock."""
import importlib.util
import time


def load(path, name):
    """The module at `path` imported under `name`, so that several copies load in one process."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_of(thread):
    """CPU seconds the thread has run (Linux: its own clock, not the process's)."""
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
