"""The model's own process: `evaluate.py` starts it, hands it rows and scores what comes back.

Frozen (listed in `harness`), but it runs the candidate's code, so nothing here is trusted:
`evaluate.py` keeps the held-out labels in its own process and computes F1 itself.

    python -I worker.py <example directory>

Protocol, over the process's original stdin and stdout, each message a 4-byte big-endian
length and then that many bytes:

    worker   -> evaluate  b"ready"                          once model is imported
    evaluate -> worker    JSON {"training": [rows with `churned`], "test": [rows without it]}
    worker   -> evaluate  JSON [prediction per test row, in order]

Anything the candidate prints goes to stderr (file descriptor 1 is pointed there before
model is imported), which `evaluate.py` captures and shows with a prefix, never as its own lines.
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

    from model import train

    write_message(replies, b"ready")
    message = read_message(requests)
    if message is None:
        return
    rows = json.loads(message)
    predict = train(rows["training"])
    predictions = [predict(row) for row in rows["test"]]
    # default=repr: a prediction JSON cannot hold reaches evaluate.py as text, which it refuses by name.
    write_message(replies, json.dumps(predictions, default=repr).encode())


if __name__ == "__main__":
    main()
