"""A user's workspace script, as the sandbox tests run it: honest processors, and every escape the tests attempt.

Each escape function returns what happened instead of raising, so that a test can assert on the exact failure seen
inside the sandbox (an errno name, an exception class) rather than on "something went wrong".
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

IMPORTS = 0
IMPORTS += 1  # counts how often the worker imported this file


def imports() -> dict[str, int]:
    return {"imports": IMPORTS, "pid": os.getpid()}


def sst_mean(granule: str, output: str) -> dict[str, object]:
    """A real processor with the platform's toolbox: the mean SST of a granule, and a corner written as output."""
    import numpy as np
    import xarray as xr

    from nephelae.toolbox import latitude_name, longitude_name

    with xr.open_dataset(granule) as dataset:
        sst = dataset["analysed_sst"]
        mean = float(np.nanmean(sst.values))
        corner = {latitude_name(dataset): slice(0, 10), longitude_name(dataset): slice(0, 10)}
        sst.isel(corner).to_netcdf(output)
    return {"mean": mean, "output": output}


def fail(value: int) -> None:
    def check(value: int) -> None:
        raise ValueError(f"granule {value} has no SST")

    check(value)


def noisy(value: int) -> int:
    """Prints every way a program can, including bytes that look like a protocol frame."""
    print("hello from print")
    print("to stderr", file=sys.stderr)
    sys.stdout.buffer.write(b"\x00\x00\x00\x05{}{}{")
    sys.stdout.flush()
    os.write(1, b"\x00\x00\x00\x02{}")
    os.system("echo from a shell child")
    return value + 1


def whoami() -> dict[str, object]:
    lines = Path("/proc/self/status").read_text().splitlines()
    status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    return {"uid": os.getuid(), "cap_eff": status["CapEff"].strip(), "hostname": socket.gethostname()}


def connect(host: str, port: int) -> str:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        return type(error).__name__
    return "connected"


def interfaces() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


def resolve(name: str) -> str:
    try:
        socket.getaddrinfo(name, 443)
    except OSError as error:
        return type(error).__name__
    return "resolved"


def write(path: str) -> str:
    try:
        with open(path, "ab") as file:
            file.write(b"written from the sandbox\n")
    except OSError as error:
        return errno.errorcode.get(error.errno or 0, type(error).__name__)
    return "written"


def read(path: str) -> str:
    try:
        with open(path, "rb") as file:
            file.read()
    except OSError as error:
        return errno.errorcode.get(error.errno or 0, type(error).__name__)
    return "read"


def listdir(path: str) -> list[str]:
    return sorted(os.listdir(path))


def environment() -> dict[str, str]:
    return dict(os.environ)


def shell_id() -> dict[str, object]:
    output = subprocess.run(["id", "-u"], capture_output=True, text=True, check=True).stdout
    return {"system": os.system("id > /dev/null"), "id": output.strip()}


def fork_bomb(attempts: int) -> dict[str, object]:
    """Start sleeping children until the kernel refuses; report how many started and how it refused."""
    children = []
    refusal = "none"
    for _ in range(attempts):
        try:
            children.append(subprocess.Popen(["sleep", "30"]))
        except OSError as error:
            refusal = errno.errorcode.get(error.errno or 0, type(error).__name__)
            break
    for child in children:
        child.kill()
        child.wait()
    return {"started": len(children), "refusal": refusal}


def allocate(megabytes: int) -> int:
    block = bytearray(megabytes << 20)
    return len(block)


def spin_forever(marker: str) -> None:
    """Leave a child in a session of its own (it must die too), then never return."""
    subprocess.Popen(["sleep", marker], start_new_session=True)
    while True:
        pass


def burn_cpu(seconds: float) -> float:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return time.process_time() - start


def exit_hard(status: int) -> None:
    os._exit(status)


def segfault() -> None:
    ctypes.string_at(0)


def returns_object() -> object:
    return object()


def multiprocessing_lock() -> str:
    import multiprocessing

    with multiprocessing.Lock():  # a POSIX semaphore in /dev/shm
        return "locked"
