#!/usr/bin/env python3
"""Names a caller swaps under qcowd (swapped-names.sh).

    swapped-names.py deep DIR          make DIR/s1/s2, a directory whose
                                       canonical path is too long for
                                       PATH_MAX, reached through two links
    swapped-names.py swap LINK A B STOP
                                       point LINK at A, then B, then A...
                                       (each change atomic) until STOP exists
"""
import os
import sys

COMPONENT = "d" * 200


def deep(top):
    """26 components of 200 bytes: over 5000 bytes below top, made one
    relative step at a time (no single name is too long)."""
    os.chdir(top)
    for half, link in ((13, "s1"), (13, "s2")):
        start = os.getcwd()
        for _ in range(half):
            os.mkdir(COMPONENT)
            os.chdir(COMPONENT)
        os.symlink("/".join([COMPONENT] * half), os.path.join(start, link))


def swap(link, a, b, stop):
    tmp = link + ".new"
    flips = 0
    while not os.path.exists(stop):
        for target in (a, b):
            os.symlink(target, tmp)
            os.replace(tmp, link)
        flips += 1
    print("swapped-names: %d flips" % flips)


if sys.argv[1] == "deep":
    deep(sys.argv[2])
else:
    swap(*sys.argv[2:6])
