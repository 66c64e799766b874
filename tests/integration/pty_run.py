"""Runs a command on a pseudo-terminal (stdin, stdout and stderr), answering
a prompt, for tests of what shredctl does only on a terminal."""
import os
import pty
import subprocess
import time


def run_on_pty(cmd, answer=None, prompt=b"[y/N]", timeout=120, cwd=None):
    """Returns (returncode, everything the command wrote). Writes `answer`
    once `prompt` has appeared (never, if answer is None)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=cwd)
    os.close(slave)
    out = b""
    answered = answer is None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        out += chunk
        if not answered and prompt in out:
            os.write(master, answer)
            answered = True
    os.close(master)
    return p.wait(timeout=max(1, deadline - time.monotonic())), out
