"""A stand-in for srun/ssh in the precompute's launcher tests: runs the
worker command given after the options as a child process, and exits with
its status (128 + the signal, as a shell reports, if it was killed).

``--kill-first MARKER``: the first worker whose launcher creates MARKER is
killed (SIGKILL) once it has written a block, to test that the run completes
without it; MARKER.killed is made then.
"""

import os
import signal
import socket
import subprocess
import sys
import time


def progress_file(command, pid):
    """Where the worker ``pid`` counts its blocks (the run folder inside the
    done markers, see gp_hotdistance.precompute._worker.run_paths)."""
    container = command[command.index("--zarr") + 1]
    out = command[command.index("--out") + 1]
    return os.path.join(
        container, f"{out}_done", "run", "progress", f"{socket.gethostname()}-{pid}"
    )


def main(argv):
    victim = False
    if argv[:1] == ["--kill-first"]:
        marker = argv[1]
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            victim = True
        except FileExistsError:
            pass
        argv = argv[2:]
    process = subprocess.Popen(argv)
    if victim:
        path = progress_file(argv, process.pid)
        while process.poll() is None:
            if os.path.exists(path) and os.path.getsize(path) >= 1:
                process.send_signal(signal.SIGKILL)
                open(marker + ".killed", "w").close()
                break
            time.sleep(0.05)
    status = process.wait()
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
