"""The renderer's own process: `bench.py` starts it, feeds it the workload and times it from outside.

Frozen (listed in `harness`), but it runs the candidate's code, so nothing here is trusted:
`bench.py` measures the time with its own clock and fingerprints the bytes that come back.

    python -I worker.py <example directory>

Protocol, over the process's original stdin and stdout, each message a 4-byte big-endian
length and then that many bytes:

    worker -> bench   b"ready"                           once templite is imported
    bench  -> worker  JSON {"repeat": n, "jobs": [[template, context], ...]}   once
    bench  -> worker  a nonce (16 bytes)                 one per batch: render the workload n times
    worker -> bench   the nonce + "\\0".join(outputs) as UTF-8, the outputs of the last of the n

Anything the candidate prints goes to stderr (file descriptor 1 is pointed there before
templite is imported), which `bench.py` captures and shows with a prefix, never as its own lines.
"""

import json
import os
import struct
import sys


def read_message(stream):
    header = stream.read(4)
    if len(header) < 4:
        return None
    (length,) = struct.unpack(">I", header)
    body = stream.read(length)
    return body if len(body) == length else None


def write_message(stream, body):
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def main():
    sys.path.insert(0, os.path.abspath(sys.argv[1]))
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # print() and C-level writes to fd 1 land in the captured stderr

    from templite import render

    write_message(replies, b"ready")
    workload = read_message(requests)
    if workload is None:
        return
    workload = json.loads(workload)
    repeat, jobs = workload["repeat"], [(template, context) for template, context in workload["jobs"]]
    while True:
        nonce = read_message(requests)
        if nonce is None:
            return
        for _ in range(repeat):
            outputs = [render(template, context) for template, context in jobs]
        write_message(replies, nonce + "\0".join(outputs).encode())


if __name__ == "__main__":
    main()
