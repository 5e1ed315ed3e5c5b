// Reading a co-browse recording (`application/x-tandem-cobrowse+gzip`): concatenated gzip
// members of NDJSON, whose first line is the header {"format":"tandem-cobrowse","v":1,...}.
//
// Chromium's DecompressionStream("gzip") stops at the end of the first member ("Junk found
// after end of compressed data"), so members are read one at a time: inflate from an offset
// until that error, then find where the member ended by its trailer (CRC-32 and length of what
// it inflated to, RFC 1952 §2.3.1), which must be followed by the next member's magic bytes.

export const FORMAT = "tandem-cobrowse";
export const VERSION = 1;

let crcTable = null;
function crc32(bytes) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Inflate one gzip member starting at `bytes[0]`; returns its output and whether more follows. */
async function inflateMember(bytes) {
  const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip")).getReader();
  const chunks = [];
  let length = 0;
  let trailing = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      length += value.length;
    }
  } catch (err) {
    if (!/junk|trailing/i.test(String(err && err.message))) throw err;
    trailing = true;
  }
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return { out, trailing };
}

const u32 = (b, i) => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;

/** Where the member that inflated to `out` ends in `bytes` (searching from `from`). */
function memberEnd(bytes, from, out) {
  const crc = crc32(out);
  const size = out.length >>> 0;
  for (let p = from + 18; p + 3 <= bytes.length; p++) {
    if (bytes[p] !== 0x1f || bytes[p + 1] !== 0x8b || bytes[p + 2] !== 0x08) continue;
    if (u32(bytes, p - 8) === crc && u32(bytes, p - 4) === size) return p;
  }
  return -1;
}

/** All members of a (possibly multi-member) gzip file, decompressed and joined. */
export async function gunzipAll(bytes) {
  const parts = [];
  let offset = 0;
  while (offset < bytes.length) {
    const { out, trailing } = await inflateMember(bytes.subarray(offset));
    parts.push(out);
    if (!trailing) break;
    let end = memberEnd(bytes, offset, out);
    if (end < 0) {
      // Chromium may report the junk before it hands out the member's last output (seen with
      // members of a few hundred KB): find the end by inflating each candidate slice whole.
      const found = await wholeMember(bytes, offset);
      if (!found) throw new Error("the recording is damaged (a gzip member has no valid end)");
      parts[parts.length - 1] = found.out;
      end = found.end;
    }
    offset = end;
  }
  return parts;
}

/** The member starting at `from`, inflated from exactly its own bytes (null if none fits). */
async function wholeMember(bytes, from) {
  for (let p = from + 18; p + 3 <= bytes.length; p++) {
    if (bytes[p] !== 0x1f || bytes[p + 1] !== 0x8b || bytes[p + 2] !== 0x08) continue;
    let member;
    try {
      member = await inflateMember(bytes.subarray(from, p));
    } catch {
      continue; // not the end: these bytes end mid-member
    }
    const { out, trailing } = member;
    if (!trailing && u32(bytes, p - 8) === crc32(out) && u32(bytes, p - 4) === out.length >>> 0) return { out, end: p };
  }
  return null;
}

/** Parse a recording: its header and the rrweb events. */
export async function parseRecording(bytes) {
  const parts = await gunzipAll(bytes);
  const decoder = new TextDecoder();
  let text = "";
  for (const p of parts) text += decoder.decode(p, { stream: true });
  text += decoder.decode();
  const lines = text.split("\n");
  let header = null;
  try {
    header = JSON.parse(lines[0]);
  } catch {
    // checked below
  }
  if (!header || header.format !== FORMAT || header.v !== VERSION) {
    throw new Error("not a Tandem co-browse recording (or a newer version)");
  }
  const events = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    try {
      events.push(JSON.parse(line));
    } catch {
      break; // a torn last line (the writer crashed): keep what came before
    }
  }
  events.sort((a, b) => a.timestamp - b.timestamp);
  return { header, events };
}
