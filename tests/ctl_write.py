#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Write stdin to a control file with one open/write/close, as a program
# does; the error of the write or of the close is printed and exits 1.
import sys

data = sys.stdin.buffer.read()
try:
    with open(sys.argv[1], "wb", buffering=0) as f:
        f.write(data)
except OSError as e:
    print(e, file=sys.stderr)
    sys.exit(1)
