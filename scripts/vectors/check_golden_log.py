#!/usr/bin/env python3
"""Check trustlog's golden Merkle log (ledger/testdata/golden) without Go.

A second implementation, in Python's standard library only, of what an
auditor checks in a trustlog log, written from docs/ledger.md and RFC 9162
(RFC 6962 hashing): every stored hash of hashes.txt is the Merkle tree hash
of the leaves it covers; every checkpoint's root is the tree hash of its
first N leaves; the inclusion proof leads from its operation to its
checkpoint's root; every consistency proof leads from the older checkpoint
to the newer one. Ed25519 signatures are not checked here (the standard
library has no Ed25519; the Go tests check them with sumdb/note and
transparency-dev's packages): this script checks the hashes.

Usage: check_golden_log.py [DIR]   (default ledger/testdata/golden)
Exits 1 on the first mismatch, naming the file.
"""

import base64
import binascii
import hashlib
import os
import sys


def b64(s, where):
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Failure("%s: bad base64 %r: %s" % (where, s, e))


class Failure(Exception):
    pass


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_hash(leaves):
    """RFC 9162 2.1.1: MTH of a list of leaf hashes."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(tree_hash(leaves[:k]), tree_hash(leaves[k:]))


def parse_checkpoint(text, where):
    """A signed checkpoint note: origin, size, root, blank line, signatures."""
    body, sep, sigs = text.partition("\n\n")
    if not sep or not sigs.startswith("\u2014 "):
        raise Failure("%s: not a signed note (body, blank line, signature lines)" % where)
    lines = body.split("\n")
    if len(lines) < 3:
        raise Failure("%s: a checkpoint body has origin, size and root" % where)
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or (size != "0" and size.startswith("0")):
        raise Failure("%s: bad tree size %r" % (where, size))
    root = b64(root, where)
    if len(root) != 32:
        raise Failure("%s: root is %d bytes, want 32" % (where, len(root)))
    return origin, int(size), root


def verify_inclusion(index, size, leaf, path, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, path):
    """RFC 9162 2.1.4.2."""
    if first > second:
        return False
    if first == second:
        return not path and first_hash == second_hash
    if first == 0:
        return not path
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_hash] + list(path)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def stored_hash_index(level, n):
    """golang.org/x/mod/sumdb/tlog StoredHashIndex."""
    for _ in range(level):
        n = 2 * n + 1
    i = 0
    while n > 0:
        i += n
        n >>= 1
    return i + level


def check(d):
    read = lambda name: open(os.path.join(d, name), encoding="utf-8").read()
    leaves = [leaf_hash(b64(l, "leaves.txt")) for l in read("leaves.txt").split("\n") if l]
    checked = 0

    for line in read("hashes.txt").split("\n"):
        if not line or line.startswith("#"):
            continue
        idx, level, n, h = line.split(" ")
        idx, level, n = int(idx), int(level), int(n)
        if stored_hash_index(level, n) != idx:
            raise Failure("hashes.txt: index %d is not level %d, n %d" % (idx, level, n))
        lo, hi = n << level, (n + 1) << level
        if hi > len(leaves) or tree_hash(leaves[lo:hi]) != b64(h, "hashes.txt"):
            raise Failure("hashes.txt: stored hash %d (level %d, n %d) is not the tree hash of leaves %d-%d" % (idx, level, n, lo, hi - 1))
        checked += 1

    roots = {}
    for name in sorted(os.listdir(d)):
        if name.startswith("checkpoint-") and name.endswith(".txt"):
            _, size, root = parse_checkpoint(read(name), name)
            if size > len(leaves) or tree_hash(leaves[:size]) != root:
                raise Failure("%s: root is not the tree hash of the first %d leaves" % (name, size))
            roots[size] = root
            checked += 1

    for name in sorted(os.listdir(d)):
        if name.endswith(".tlog-proof"):
            lines = read(name).split("\n")
            if lines[0] != "c2sp.org/tlog-proof@v1" or not lines[1].startswith("extra ") or not lines[2].startswith("index "):
                raise Failure("%s: not a c2sp.org/tlog-proof@v1 with extra data and an index" % name)
            data = b64(lines[1][len("extra "):], name)
            index = int(lines[2][len("index "):])
            end = lines.index("", 3)
            path = [b64(l, name) for l in lines[3:end]]
            _, size, root = parse_checkpoint("\n".join(lines[end + 1:]), name)
            if leaf_hash(data) != leaves[index]:
                raise Failure("%s: the extra data is not leaf %d" % (name, index))
            if not verify_inclusion(index, size, leaf_hash(data), path, root):
                raise Failure("%s: inclusion of leaf %d in the tree of %d does not verify" % (name, index, size))
            checked += 1
        elif name.startswith("consistency-") and name.endswith(".txt"):
            lines = read(name).split("\n")
            if not lines[0].startswith("old "):
                raise Failure("%s: a consistency proof starts with 'old N'" % name)
            old = int(lines[0][len("old "):])
            end = lines.index("", 1)
            path = [b64(l, name) for l in lines[1:end]]
            _, size, root = parse_checkpoint("\n".join(lines[end + 1:]), name)
            if old not in roots:
                raise Failure("%s: no golden checkpoint of size %d to start from" % (name, old))
            if not verify_consistency(old, size, roots[old], root, path):
                raise Failure("%s: the tree of %d does not extend the checkpoint of %d" % (name, size, old))
            checked += 1
    if checked == 0:
        raise Failure("nothing to check in %s" % d)
    return checked, len(leaves)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join("ledger", "testdata", "golden")
    try:
        checked, n = check(d)
    except (Failure, OSError, ValueError, IndexError) as e:
        print("check_golden_log: FAIL: %s" % e)
        return 1
    print("check_golden_log: ok: %d stored hashes, checkpoints and proofs over %d leaves agree" % (checked, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
