#!/usr/bin/env python3
"""Check trustlog's message-format test vectors with a second implementation.

This is an implementation of docs/message-format.md (version 1) in
Python's standard library only, written from that page: normalisation,
validation, the TLOP content and TLOS sealed encodings, op_hash, and the
decoder's checks. It reads the vector file that the Go implementation
generates (core/testdata/vectors/message-format.json) and checks that

  * every accepted input normalises to the vector's fields and encodes to
    the vector's content, op_hash and sealed bytes, and that normalising
    again changes nothing;
  * every rejected input is refused, for the vector's field and no other;
  * every malformed payload is refused by the decoder, and every accepted
    vector's sealed payload decodes to its fields.

Usage: check_vectors.py [VECTORS.json]

Prints one summary line and exits 0 when everything agrees; otherwise
prints each disagreement and exits 1.
"""

import hashlib
import json
import os
import re
import secrets
import struct
import sys
import time

FORMAT_VERSION = 1

# Field order of the content (the 13 text fields, then created_at).
TEXT_FIELDS = (
    "op_id", "op_source", "op_type", "doid", "do_prefix", "do_repository",
    "op_actor", "producer_id", "hash_alg", "request_body_hash",
    "response_body_hash", "client_ip", "server_ip",
)
# Text fields of the input outside the content.
EXTRA_FIELDS = ("op_hash", "signer")

MAX_LEN = {
    "op_type": 128, "do_prefix": 128, "doid": 512, "do_repository": 256,
    "op_actor": 256, "producer_id": 256, "signer": 256,
}
MAX_SIGN = 512
HEX_DIGITS_OF = {"sha256": 64, "sha384": 96, "sha512": 128, "sm3": 64}
HEX = frozenset(b"0123456789abcdef")
DIGITS = frozenset("0123456789")
HEXCHARS = frozenset("0123456789abcdefABCDEF")
MAX_MICROS = 253402300799999999  # 9999-12-31T23:59:59.999999Z


class Refused(Exception):
    """An operation breaks a rule of the page."""


class Malformed(Exception):
    """A payload a decoder must reject."""


# --- calendar (proleptic Gregorian, POSIX days) ------------------------------

def days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def days_in_month(y, m):
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31


RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})", re.ASCII)

# The instant Go uses for "unset": 0001-01-01T00:00:00Z.
GO_ZERO_SECONDS = days_from_civil(1, 1, 1) * 86400


def parse_instant(s):
    """An RFC 3339 time as (whole POSIX seconds, fraction digits)."""
    m = RFC3339.fullmatch(s)
    if not m:
        raise ValueError("not an RFC 3339 time: %r" % s)
    y, mo, d, h, mi, sec = (int(x) for x in m.group(1, 2, 3, 4, 5, 6))
    if not (1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo) and h < 24 and mi < 60 and sec < 60):
        raise ValueError("not a valid date and time: %r" % s)
    seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec
    zone = m.group(8)
    if zone not in ("Z", "z"):
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds -= offset if zone[0] == "+" else -offset
    return seconds, m.group(7) or ""


def to_micros(seconds, fraction):
    """Truncate to the microsecond, towards the past (the fraction is >= 0)."""
    return seconds * 1_000_000 + int((fraction + "000000")[:6])


def format_micros(us):
    days, rest = divmod(us, 86_400_000_000)
    y, m, d = civil_from_days(days)
    secs, frac = divmod(rest, 1_000_000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (
        y, m, d, secs // 3600, secs // 60 % 60, secs % 60, frac)


# --- IP addresses --------------------------------------------------------------

def parse_ipv4(s):
    parts = s.split(".")
    if len(parts) != 4:
        return None
    out = []
    for p in parts:
        if not 1 <= len(p) <= 3 or not set(p) <= DIGITS or (len(p) > 1 and p[0] == "0"):
            return None
        v = int(p)
        if v > 255:
            return None
        out.append(v)
    return bytes(out)


def parse_groups(groups, may_end_in_ipv4):
    """Hex groups (and a final dotted quad) as a list of 16-bit values."""
    out = []
    for i, g in enumerate(groups):
        if may_end_in_ipv4 and i == len(groups) - 1 and "." in g:
            v4 = parse_ipv4(g)
            if v4 is None:
                return None
            out += [v4[0] << 8 | v4[1], v4[2] << 8 | v4[3]]
        elif 1 <= len(g) <= 4 and set(g) <= HEXCHARS:
            out.append(int(g, 16))
        else:
            return None
    return out


def parse_ipv6(s):
    halves = s.split("::")
    if len(halves) > 2:
        return None
    if len(halves) == 2:
        head = parse_groups(halves[0].split(":") if halves[0] else [], False)
        tail = parse_groups(halves[1].split(":") if halves[1] else [], True)
        if head is None or tail is None or len(head) + len(tail) > 7:
            return None  # "::" stands for at least one group
        groups = head + [0] * (8 - len(head) - len(tail)) + tail
    else:
        groups = parse_groups(s.split(":"), True)
        if groups is None or len(groups) != 8:
            return None
    return b"".join(struct.pack(">H", g) for g in groups)


def parse_ip(b):
    """The address's bytes (4 or 16), or None if b is not an address."""
    try:
        s = b.decode("ascii")
    except UnicodeDecodeError:
        return None
    if ":" in s:
        return parse_ipv6(s)
    return parse_ipv4(s)


def format_ip(a):
    if len(a) == 4:
        return ".".join(str(x) for x in a)
    groups = [a[i] << 8 | a[i + 1] for i in range(0, 16, 2)]
    if groups[:6] == [0, 0, 0, 0, 0, 0xFFFF]:  # IPv4-mapped: mixed form
        return "::ffff:" + ".".join(str(x) for x in a[12:])
    best, best_len, i = -1, 1, 0
    while i < 8:
        j = i
        while j < 8 and groups[j] == 0:
            j += 1
        if j - i > best_len:  # at least 2, the first of equal runs
            best, best_len = i, j - i
        i = max(j, i + 1)
    hexes = ["%x" % g for g in groups]
    if best < 0:
        return ":".join(hexes)
    return ":".join(hexes[:best]) + "::" + ":".join(hexes[best + best_len:])


# --- text and the other field rules -------------------------------------------

def refused_code_point(cp):
    return (cp <= 0x1F or 0x7F <= cp <= 0x9F or cp in (0x2028, 0x2029, 0x061C, 0x200E, 0x200F)
            or 0x202A <= cp <= 0x202E or 0x2066 <= cp <= 0x2069)


def text_problem(b, max_len, required):
    if not b:
        return "is required" if required else None
    if len(b) > max_len:
        return "longer than %d bytes" % max_len
    try:
        s = b.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return "is not valid UTF-8"
    for ch in s:
        if refused_code_point(ord(ch)):
            return "contains U+%04X" % ord(ch)
    return None


def is_uuid_text(b):
    if len(b) != 36:
        return False
    for i, c in enumerate(b):
        if i in (8, 13, 18, 23):
            if c != 0x2D:
                return False
        elif c not in HEX:
            return False
    return True


def new_uuid7():
    ms = time.time_ns() // 1_000_000
    b = bytearray(ms.to_bytes(6, "big") + secrets.token_bytes(10))
    b[6] = 0x70 | b[6] & 0x0F
    b[8] = 0x80 | b[8] & 0x3F
    h = b.hex()
    return ("%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])).encode()


def normalise(op, now):
    """Apply the page's rewrites; op maps field names to bytes, created_at
    to an RFC 3339 string or None. Returns the normalised operation."""
    n = dict(op)
    if not n["op_id"]:
        n["op_id"] = new_uuid7()
    n["op_id"] = n["op_id"].lower()  # bytes.lower: ASCII letters only
    if not n["hash_alg"]:
        n["hash_alg"] = b"sha256"
    for f in ("request_body_hash", "response_body_hash", "op_hash"):
        n[f] = n[f].lower()
    for f in ("client_ip", "server_ip"):
        a = parse_ip(n[f]) if n[f] else None
        if a is not None:
            n[f] = format_ip(a).encode()
    created = n["created_at"]
    if created is not None:
        seconds, fraction = parse_instant(created)
        if seconds == GO_ZERO_SECONDS and not fraction.strip("0"):
            created = None
    if created is None:
        if now is None:
            raise ValueError("created_at is unset and no time of recording is given")
        seconds, fraction = parse_instant(now)
    n["created_at"] = to_micros(seconds, fraction)
    return n


def problems(n):
    """Every rule the normalised operation n breaks, as {field: reason}."""
    p = {}

    def check(field, reason):
        if reason and field not in p:
            p[field] = reason

    oid = n["op_id"]
    check("op_id", None if is_uuid_text(oid) else "is not a 36-character UUID")
    if oid == b"00000000-0000-0000-0000-000000000000":
        check("op_id", "is the nil UUID")
    src = n["op_source"]
    check("op_source", None if src in (b"DOIP", b"IRP") else "is not DOIP or IRP")
    typ = n["op_type"]
    check("op_type", text_problem(typ, MAX_LEN["op_type"], True))
    if src == b"DOIP" and b" " in typ:
        check("op_type", "contains a space")
    if src == b"IRP":
        ok = re.fullmatch(rb"[1-9][0-9]*", typ) is not None and int(typ) <= 2**31 - 1
        check("op_type", None if ok else "is not an op code from 1 to 2147483647")
    prefix = n["do_prefix"]
    check("do_prefix", text_problem(prefix, MAX_LEN["do_prefix"], True))
    if b"/" in prefix:
        check("do_prefix", "contains /")
    doid = n["doid"]
    check("doid", text_problem(doid, MAX_LEN["doid"], True))
    if not doid.startswith(prefix + b"/") or len(doid) == len(prefix) + 1:
        check("doid", "is not do_prefix, /, and a local part")
    for f in ("do_repository", "op_actor", "producer_id"):
        check(f, text_problem(n[f], MAX_LEN[f], f != "do_repository"))
    digits = HEX_DIGITS_OF.get(n["hash_alg"].decode("latin-1"))
    check("hash_alg", None if digits else "is not sha256, sha384, sha512 or sm3")
    for f in ("request_body_hash", "response_body_hash"):
        h = n[f]
        if h and digits and (len(h) != digits or not set(h) <= HEX):
            check(f, "is not %d hex digits" % digits)
    for f in ("client_ip", "server_ip"):
        if n[f] and parse_ip(n[f]) is None:
            check(f, "is not an IPv4 or IPv6 address")
    if not 0 <= n["created_at"] <= MAX_MICROS:
        check("created_at", "is not between 1970 and 9999")
    h = n["op_hash"]
    if h and (len(h) != 64 or not set(h) <= HEX):
        check("op_hash", "is not 64 hex digits")
    check("signer", text_problem(n["signer"], MAX_LEN["signer"], False))
    if len(n["sign"]) > MAX_SIGN:
        check("sign", "longer than %d bytes" % MAX_SIGN)
    if n["sign"] and not n["signer"]:
        check("signer", "is required when sign is set")
    if not p and h and h.decode() != hashlib.sha256(content(n)).hexdigest():
        check("op_hash", "does not match the content")
    return p


# --- encodings ---------------------------------------------------------------------

def frame(fields):
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


def content_fields(n):
    return [n[f] for f in TEXT_FIELDS] + [struct.pack(">q", n["created_at"])]


def content(n):
    return b"TLOP\x01" + frame(content_fields(n))


def sealed(n, op_hash, signer=b"", sign=b""):
    return b"TLOS\x01" + frame(content_fields(n) + [op_hash, signer, sign])


def seal(op, now):
    """Normalise, validate and encode: (normalised, content, op_hash hex)."""
    n = normalise(op, now)
    p = problems(n)
    if p:
        raise Refused(p)
    c = content(n)
    return n, c, hashlib.sha256(c).hexdigest()


def decode_sealed(b):
    """The 17 fields of a sealed payload, after the decoder's checks."""
    if b[:4] != b"TLOS":
        raise Malformed("bad magic")
    if len(b) < 5 or b[4] != FORMAT_VERSION:
        raise Malformed("unsupported version")
    pos, fields, content_end = 5, [], None
    for i in range(17):
        if len(b) - pos < 4:
            raise Malformed("truncated at field %d" % (i + 1))
        (length,) = struct.unpack(">I", b[pos:pos + 4])
        pos += 4
        if length > len(b) - pos:
            raise Malformed("field %d runs past the end" % (i + 1))
        fields.append(b[pos:pos + length])
        pos += length
        if i == 13:
            content_end = pos
    if pos != len(b):
        raise Malformed("%d trailing bytes" % (len(b) - pos))
    if len(fields[13]) != 8:
        raise Malformed("created_at is not 8 bytes")
    if len(fields[14]) != 32:
        raise Malformed("op_hash is not 32 bytes")
    if hashlib.sha256(b"TLOP\x01" + b[5:content_end]).digest() != fields[14]:
        raise Malformed("op_hash does not match the content")
    return fields


# --- the vector file ---------------------------------------------------------------

def read_input(v):
    inp, raw = v["input"], v.get("input_hex", {})
    known = set(TEXT_FIELDS) | set(EXTRA_FIELDS) | {"created_at", "sign_hex"}
    unknown = (set(inp) | set(raw)) - known
    if unknown:
        raise ValueError("unknown input fields %s" % sorted(unknown))
    op = {}
    for f in TEXT_FIELDS + EXTRA_FIELDS:
        op[f] = bytes.fromhex(raw[f]) if f in raw else inp.get(f, "").encode("utf-8")
    if "created_at" in raw:
        raise ValueError("created_at in input_hex")
    op["created_at"] = inp.get("created_at")
    op["sign"] = bytes.fromhex(inp.get("sign_hex", ""))
    return op


def shown(n):
    """The normalised fields as the vector file writes them."""
    out = {f: n[f].decode("utf-8") for f in TEXT_FIELDS}
    out["created_at"] = format_micros(n["created_at"])
    return out


def check_accept(v):
    n, c, h = seal(read_input(v), v.get("now"))
    errs = []
    if shown(n) != v["normalised"]:
        diff = {f: (shown(n)[f], v["normalised"].get(f)) for f in shown(n) if shown(n)[f] != v["normalised"].get(f)}
        errs.append("normalised fields differ (got, want): %r" % diff)
    if str(n["created_at"]) != v["created_at_micros"]:
        errs.append("created_at_micros %d, want %s" % (n["created_at"], v["created_at_micros"]))
    if c.hex() != v["content_hex"]:
        errs.append("content differs:\n  got  %s\n  want %s" % (c.hex(), v["content_hex"]))
    if h != v["op_hash"]:
        errs.append("op_hash %s, want %s" % (h, v["op_hash"]))
    s = sealed(n, bytes.fromhex(h))
    if s.hex() != v["sealed_hex"]:
        errs.append("sealed encoding differs")
    fields = decode_sealed(bytes.fromhex(v["sealed_hex"]))
    if fields[:14] != content_fields(n) or fields[14].hex() != v["op_hash"] or fields[15:] != [b"", b""]:
        errs.append("the sealed payload does not decode to the operation")
    # Idempotence: the normalised operation normalises to itself.
    again = dict(n, created_at=format_micros(n["created_at"]), op_hash=b"")
    if normalise(again, None) != dict(n, op_hash=b""):
        errs.append("normalising the normalised operation changes it")
    return errs


def check_reject(v):
    op = read_input(v)
    try:
        seal(op, v.get("now"))
    except Refused as e:
        got = e.args[0]
        if set(got) != {v["field"]}:
            return ["refused for %r, want only %s" % (got, v["field"])]
        return []
    return ["accepted, want refused for %s" % v["field"]]


def check_malformed(v):
    try:
        decode_sealed(bytes.fromhex(v["sealed_hex"]))
    except Malformed:
        return []
    return ["decoded, want rejected"]


def main(argv):
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                           "core", "testdata", "vectors", "message-format.json")
    path = argv[1] if len(argv) > 1 else default
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    if doc.get("format_version") != FORMAT_VERSION:
        print("check_vectors: %s is for format version %r, this checks %d"
              % (path, doc.get("format_version"), FORMAT_VERSION))
        return 1
    kinds = (("accept", check_accept), ("reject", check_reject), ("malformed", check_malformed))
    failures = []
    for kind, check in kinds:
        for v in doc[kind]:
            try:
                errs = check(v)
            except (Refused, Malformed, ValueError, KeyError) as e:
                errs = ["%s: %s" % (type(e).__name__, e)]
            failures += ["%s/%s: %s" % (kind, v["name"], e) for e in errs]
    counts = [len(doc[k]) for k, _ in kinds]
    if not all(counts):
        failures.append("the file lacks accepted, rejected or malformed vectors")
    for f in failures:
        print(f)
    if failures:
        print("check_vectors: FAILED: %d disagreements in %d vectors of %s" % (len(failures), sum(counts), path))
        return 1
    print("check_vectors: ok: %d accepted, %d rejected, %d malformed vectors agree with %s"
          % (counts[0], counts[1], counts[2], doc["spec"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
