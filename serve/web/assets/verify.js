// verify.js: checks, in the reader's browser, that the operation the page
// shows is in the public log, with WebCrypto only (SHA-256, Ed25519).
//
//  1. fetch   GET the operation's C2SP tlog-proof and the log's note key.
//  2. parse   Read the proof: the entry (its "extra" line: the operation's
//             sealed encoding, docs/message-format.md), its leaf index, the
//             inclusion proof's hashes, and the signed checkpoint.
//  3. signature  The checkpoint is a signed note (golang.org/x/mod/sumdb/note):
//             find the signature line of the key's name and key hash and
//             verify its Ed25519 signature over the note's text.
//  4. origin  The checkpoint's origin is the key's name.
//  5. inclusion  Leaf hash SHA-256(0x00 || entry); recompute the root of the
//             checkpoint's tree from it and the proof (RFC 6962/9162, as
//             golang.org/x/mod/sumdb/tlog.CheckRecord) and compare.
//  6. entry   Decode the entry: the operation the page is about, its
//             op_hash the SHA-256 of its content; show its fields, each
//             compared with what the server rendered.
//
// Everything it writes into the page goes through textContent: the
// operation's fields are text recorded by applications, never markup.
"use strict";

(() => {
  const enc = new TextEncoder();
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const lenient = new TextDecoder("utf-8"); // for display: as the server's HTML shows bytes

  // StepError is a failed check: the step and why, for the reader.
  class StepError extends Error {
    constructor(step, message) {
      super(message);
      this.step = step;
    }
  }
  const fail = (step, message) => {
    throw new StepError(step, message);
  };

  // --- bytes

  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  };
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const toBase64 = (b) => btoa(Array.from(b, (x) => String.fromCharCode(x)).join(""));
  // fromBase64 decodes standard, padded base64 in its one canonical form
  // (as the C2SP formats require), or returns null.
  const fromBase64 = (s) => {
    if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
    let bin;
    try {
      bin = atob(s);
    } catch {
      return null;
    }
    const b = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return toBase64(b) === s ? b : null;
  };
  const sha256 = async (...parts) => new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));

  // --- 1. fetch

  // get fetches url from this origin as bytes; a 404 is null.
  const get = async (url, what) => {
    let resp;
    try {
      resp = await fetch(url, { cache: "no-store", credentials: "omit", redirect: "error" });
    } catch (e) {
      fail("fetch", `${what}: ${e.message}`);
    }
    if (resp.status === 404) return null;
    if (!resp.ok) fail("fetch", `${what}: the server answered ${resp.status} ${resp.statusText}`);
    return new Uint8Array(await resp.arrayBuffer());
  };
  const text = (step, bytes, what) => {
    try {
      return utf8.decode(bytes);
    } catch {
      fail(step, `${what} is not UTF-8`);
    }
  };

  // --- the log's key: name+hash+base64(0x01 || Ed25519 public key)

  const parseKey = async (s) => {
    // The name has no '+'; the key's base64 may.
    const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(s.trim());
    if (!m) fail("fetch", "the log's key is not a note verifier key (name+hash+key)");
    const [, name, hash8] = m;
    const data = fromBase64(m[3]);
    if (!data || data.length !== 33 || data[0] !== 1) fail("fetch", "the log's key is not an Ed25519 note key");
    // The key hash: the first 4 bytes of SHA-256(name "\n" 0x01 key).
    const id = (await sha256(enc.encode(name + "\n"), data)).slice(0, 4);
    if (hex(id) !== hash8) fail("fetch", `the log's key hash ${hash8} does not match its key (${hex(id)})`);
    return { name, id, hashed: `${name}+${hash8}`, raw: data.slice(1) };
  };

  // --- 2. parse: C2SP tlog-proof

  const parseProof = (s) => {
    const cut = s.indexOf("\n\n");
    if (cut < 0) fail("parse", "no blank line before the checkpoint");
    const lines = s.slice(0, cut).split("\n");
    if (lines[0] !== "c2sp.org/tlog-proof@v1") fail("parse", "the first line is not c2sp.org/tlog-proof@v1");
    let i = 1;
    let leaf = null;
    if (lines[i] !== undefined && lines[i].startsWith("extra ")) {
      leaf = fromBase64(lines[i].slice("extra ".length));
      if (!leaf) fail("parse", "the extra line (the entry) is not canonical base64");
      i++;
    }
    if (!leaf) fail("parse", "the proof carries no entry (no extra line)");
    const m = /^index (0|[1-9][0-9]{0,18})$/.exec(lines[i] ?? "");
    if (!m) fail("parse", "no index line");
    const index = BigInt(m[1]);
    const rest = lines.slice(i + 1);
    if (rest.length > 63) fail("parse", `${rest.length} proof hashes (at most 63)`);
    const hashes = rest.map((l, k) => {
      const h = fromBase64(l);
      if (!h || h.length !== 32) fail("parse", `proof hash ${k + 1} is not a canonical base64 SHA-256 hash`);
      return h;
    });
    return { leaf, index, hashes, checkpoint: s.slice(cut + 2) };
  };

  // parseNote splits a signed note: its text (ending with a newline) and
  // its signature lines "— name base64".
  const parseNote = (msg) => {
    if (!msg.endsWith("\n")) fail("parse", "the checkpoint does not end with a newline");
    const split = msg.lastIndexOf("\n\n");
    if (split < 0) fail("parse", "the checkpoint has no signatures");
    const sigs = msg
      .slice(split + 2, -1)
      .split("\n")
      .map((line) => {
        const m = /^\u2014 ([^ ]+) ([A-Za-z0-9+/=]+)$/.exec(line);
        if (!m) fail("parse", "a checkpoint signature line is malformed");
        const blob = fromBase64(m[2]);
        if (!blob || blob.length < 5) fail("parse", "a checkpoint signature is not canonical base64");
        return { name: m[1], id: blob.slice(0, 4), sig: blob.slice(4) };
      });
    return { text: msg.slice(0, split + 1), sigs };
  };

  // parseCheckpoint reads the C2SP tlog-checkpoint body: origin, size,
  // root (extension lines after them are allowed).
  const parseCheckpoint = (body) => {
    const lines = body.slice(0, -1).split("\n");
    if (lines.length < 3 || lines[0] === "") fail("parse", "the checkpoint needs origin, size and root lines");
    if (!/^(0|[1-9][0-9]{0,18})$/.test(lines[1])) fail("parse", `the checkpoint size ${JSON.stringify(lines[1])} is not a decimal number`);
    const root = fromBase64(lines[2]);
    if (!root || root.length !== 32) fail("parse", "the checkpoint root is not a base64 SHA-256 hash");
    return { origin: lines[0], size: BigInt(lines[1]), root };
  };

  // --- 3. signature

  const checkSignature = async (note, key) => {
    const mine = note.sigs.filter((s) => s.name === key.name && equal(s.id, key.id));
    if (mine.length === 0) {
      const names = note.sigs.map((s) => `${s.name}+${hex(s.id)}`).join(", ");
      fail("signature", `no signature by the log's key ${key.hashed} (signed by ${names})`);
    }
    let pub;
    try {
      pub = await crypto.subtle.importKey("raw", key.raw, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      fail("signature", `this browser cannot check Ed25519 signatures (${e.message})`);
    }
    for (const s of mine) {
      if (s.sig.length === 64 && (await crypto.subtle.verify({ name: "Ed25519" }, pub, s.sig, enc.encode(note.text)))) {
        return;
      }
    }
    fail("signature", `the signature by ${key.hashed} does not verify: the checkpoint was altered or signed by another key`);
  };

  // --- 5. inclusion (RFC 9162 2.1.3.2)

  const rootFromProof = async (leafHash, index, size, proof) => {
    if (index >= size) fail("inclusion", `leaf ${index} is outside the checkpoint's tree of ${size}`);
    let fn = index;
    let sn = size - 1n;
    let r = leafHash;
    const node = new Uint8Array([1]);
    for (const p of proof) {
      if (sn === 0n) fail("inclusion", "the proof is longer than the tree is deep");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(node, p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await sha256(node, r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) fail("inclusion", "the proof is shorter than the tree is deep");
    return r;
  };

  // --- 6. entry: the sealed encoding ("TLOS")

  const names = [
    "op_id", "op_source", "op_type", "doid", "do_prefix", "do_repository", "op_actor", "producer_id",
    "hash_alg", "request_body_hash", "response_body_hash", "client_ip", "server_ip", "created_at",
    "op_hash", "signer", "sign",
  ];

  // microsToText writes microseconds since the epoch as the page does:
  // 2006-01-02T15:04:05.000000Z.
  const microsToText = (us) => {
    const secs = us / 1000000n;
    const frac = us % 1000000n;
    const iso = new Date(Number(secs) * 1000).toISOString(); // ….000Z
    return iso.slice(0, 19) + "." + frac.toString().padStart(6, "0") + "Z";
  };

  const decodeEntry = async (b) => {
    if (b.length < 5 || lenient.decode(b.slice(0, 4)) !== "TLOS") fail("entry", "the entry is not a sealed operation (TLOS)");
    if (b[4] !== 1) fail("entry", `the entry is of format version ${b[4]}, not 1`);
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const raw = [];
    let off = 5;
    let contentEnd = 0;
    while (off < b.length) {
      if (raw.length === names.length) fail("entry", "the entry has trailing bytes");
      if (off + 4 > b.length) fail("entry", "the entry is truncated");
      const n = view.getUint32(off);
      off += 4;
      if (n > b.length - off) fail("entry", "a field of the entry runs past its end");
      raw.push(b.subarray(off, off + n));
      off += n;
      if (raw.length === 14) contentEnd = off;
    }
    if (raw.length !== names.length) fail("entry", `the entry has ${raw.length} fields, not ${names.length}`);
    const f = Object.fromEntries(names.map((n, i) => [n, raw[i]]));
    if (f.created_at.length !== 8) fail("entry", "created_at is not 8 bytes");
    if (f.op_hash.length !== 32) fail("entry", "op_hash is not 32 bytes");
    const content = concat(enc.encode("TLOP\x01"), b.subarray(5, contentEnd));
    const computed = await sha256(content);
    if (!equal(computed, f.op_hash)) {
      fail("entry", `op_hash ${hex(f.op_hash)} is not the SHA-256 of the operation's content (${hex(computed)})`);
    }
    const op = {};
    for (const n of names) op[n] = lenient.decode(f[n]);
    const micros = new DataView(f.created_at.buffer, f.created_at.byteOffset, 8).getBigInt64(0);
    op.created_at = microsToText(micros);
    op.op_hash = hex(f.op_hash);
    op.sign = f.sign.length ? `${f.sign.length} bytes` : "";
    return op;
  };

  // --- the page

  const main = document.getElementById("op");
  const result = document.getElementById("result");
  const stepOf = (name) => document.querySelector(`#steps li[data-step="${name}"]`);
  const mark = (name, state, detail) => {
    const li = stepOf(name);
    li.dataset.state = state;
    if (detail !== undefined) li.querySelector(".detail").textContent = detail;
  };
  const setProof = (name, value) => {
    document.querySelector(`#proof dd[data-proof="${name}"]`).textContent = value;
  };
  let current = "fetch";
  const step = (name) => {
    current = name;
    mark(name, "running");
  };
  const done = (detail) => mark(current, "ok", detail);

  // showFields writes the entry's fields into the table and returns the
  // rows where the server's page said otherwise.
  const showFields = (op) => {
    const differs = [];
    for (const row of document.querySelectorAll("#fields tr[data-field]")) {
      const name = row.dataset.field;
      const cell = row.querySelector("td");
      const served = cell.textContent;
      const signed = op[name] ?? "";
      cell.textContent = signed;
      row.dataset.check = served === signed ? "same" : "differs";
      if (served !== signed) {
        differs.push(`${row.querySelector("th").textContent} is "${served}" on this page but "${signed}" in the signed entry`);
      }
    }
    return differs;
  };

  const verify = async () => {
    const opID = main.dataset.opId;

    step("fetch");
    const [proofBytes, keyBytes] = await Promise.all([
      get(main.dataset.proofUrl, "the proof"),
      get(main.dataset.keyUrl, "the log's key"),
    ]);
    if (keyBytes === null) fail("fetch", "the server has no log key (404)");
    if (proofBytes === null) return false; // not in a signed checkpoint yet
    const key = await parseKey(text("fetch", keyBytes, "the log's key"));
    setProof("key", key.hashed);
    done(`key ${key.hashed}`);

    step("parse");
    const proof = parseProof(text("parse", proofBytes, "the proof"));
    const note = parseNote(proof.checkpoint);
    const cp = parseCheckpoint(note.text);
    setProof("index", proof.index.toString());
    setProof("size", cp.size.toString());
    setProof("root", toBase64(cp.root));
    done(`leaf ${proof.index} of a tree of ${cp.size}, ${proof.hashes.length} proof hashes`);

    step("signature");
    await checkSignature(note, key);
    done(`signed by ${key.hashed}`);

    step("origin");
    if (cp.origin !== key.name) fail("origin", `the checkpoint's origin "${cp.origin}" is not the key's name "${key.name}"`);
    done(cp.origin);

    step("inclusion");
    const leafHash = await sha256(new Uint8Array([0]), proof.leaf);
    setProof("leaf", toBase64(leafHash));
    const root = await rootFromProof(leafHash, proof.index, cp.size, proof.hashes);
    if (!equal(root, cp.root)) {
      fail("inclusion", `the root computed from the entry and the proof, ${toBase64(root)}, is not the checkpoint's ${toBase64(cp.root)}`);
    }
    done(`root ${toBase64(root)}`);

    step("entry");
    const op = await decodeEntry(proof.leaf);
    if (op.op_id !== opID) fail("entry", `the proof is of operation ${op.op_id}, not of ${opID}`);
    const differs = showFields(op);
    if (differs.length) fail("entry", differs.join("; "));
    done(`op_hash ${op.op_hash}`);

    result.dataset.state = "verified";
    result.textContent =
      `Verified in your browser: operation ${opID} is entry ${proof.index} of the log ${cp.origin}, ` +
      `whose checkpoint of ${cp.size} entries is signed by the key ${key.hashed}.`;
    return true;
  };

  const skipRest = () => {
    for (const li of document.querySelectorAll('#steps li[data-state="pending"]')) li.dataset.state = "skipped";
  };

  verify().then(
    (verified) => {
      if (verified) return;
      mark("fetch", "waiting", "no signed checkpoint covers this operation yet");
      skipRest();
      result.dataset.state = "pending";
      result.textContent = "Not verifiable yet: no signed checkpoint of the log covers this operation. Reload the page in a minute.";
    },
    (err) => {
      const name = err instanceof StepError ? err.step : current;
      const message = err instanceof StepError ? err.message : `unexpected error: ${err}`;
      mark(name, "failed", message);
      skipRest();
      const li = stepOf(name);
      const number = Array.prototype.indexOf.call(li.parentElement.children, li) + 1;
      result.dataset.state = "failed";
      result.dataset.step = name;
      result.textContent = `Verification failed at step ${number} (${li.querySelector(".what").textContent}): ${message}`;
    },
  );
})();
