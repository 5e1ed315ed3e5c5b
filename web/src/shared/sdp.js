// Keeps the browser and the Tandem media server agreeing on numbers in SDP.
//
// The server (aiortc) numbers codecs (payload types) and RTP header extensions with its own
// fixed tables in every offer it makes, including for m-lines the browser numbered first. Chrome
// refuses such offers ("RTP extension ID reassignment not supported", "A BUNDLE group contains a
// codec collision"), or accepts a payload type change that the server's forwarding then drops.
//
// So the client keeps one numbering for the whole connection: what the browser chose in its own
// offers, plus free numbers for anything new; and renumbers each server offer with it before
// applying it. The answer then carries these numbers and the server adopts them, as an offerer
// must. (A server-side fix, offers that keep the negotiated numbers, would make this a no-op.)

const EXT = /^a=extmap:(\d+)((?:\/\w+)?) (\S+)/;
const DYNAMIC = [...range(96, 127), ...range(35, 63)];

function range(a, b) {
  const out = [];
  for (let i = a; i <= b; i++) out.push(i);
  return out;
}

/** Split an SDP into its session part and m-sections (arrays of lines). */
function sections(sdp) {
  const lines = sdp.split(/\r\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  const out = [[]];
  for (const line of lines) {
    if (line.startsWith("m=")) out.push([]);
    out[out.length - 1].push(line);
  }
  return out;
}

/** pt -> {name, clock, channels, fmtp} for one m-section. */
function codecs(section) {
  const map = new Map();
  for (const line of section) {
    let m = /^a=rtpmap:(\d+) ([^/]+)\/(\d+)(?:\/(\d+))?/.exec(line);
    if (m) map.set(Number(m[1]), { name: m[2].toLowerCase(), clock: m[3], channels: m[4] || "1", fmtp: "" });
  }
  for (const line of section) {
    const m = /^a=fmtp:(\d+) (.*)$/.exec(line);
    if (m && map.has(Number(m[1]))) map.get(Number(m[1])).fmtp = m[2];
  }
  if (section[0] && section[0].startsWith("m=")) {
    // Static payload types may come without an rtpmap line.
    const STATIC = { 0: ["pcmu", "8000"], 8: ["pcma", "8000"], 9: ["g722", "8000"], 13: ["cn", "8000"] };
    for (const pt of section[0].split(" ").slice(3).map(Number)) {
      if (!map.has(pt) && STATIC[pt]) map.set(pt, { name: STATIC[pt][0], clock: STATIC[pt][1], channels: "1", fmtp: "" });
    }
  }
  return map;
}

function params(fmtp) {
  return fmtp
    .split(";")
    .map((p) => p.trim())
    .filter((p) => p && !p.startsWith("apt="))
    .sort()
    .join(";");
}

/** A codec's identity regardless of its number (rtx: the identity of what it repairs). */
function signature(pt, table, seen = 0) {
  const c = table.get(pt);
  if (!c) return null;
  if (c.name === "rtx") {
    const apt = /(?:^|;)\s*apt=(\d+)/.exec(c.fmtp);
    const inner = apt && seen < 2 ? signature(Number(apt[1]), table, seen + 1) : null;
    return inner ? `rtx/${c.clock}>${inner}` : null;
  }
  return `${c.name}/${c.clock}/${c.channels};${params(c.fmtp)}`;
}

export class Numbering {
  constructor() {
    /** extension URI -> id */
    this.ext = new Map();
    /** codec signature -> payload type */
    this.pt = new Map();
    /** payload types in use anywhere (never handed out to another codec) */
    this.usedPt = new Set();
  }

  /** Take the browser's own numbers from a description it made (first come, first kept). */
  learn(sdp) {
    const usedExt = new Set(this.ext.values());
    for (const section of sections(sdp)) {
      for (const line of section) {
        const m = EXT.exec(line);
        if (m && !this.ext.has(m[3]) && !usedExt.has(Number(m[1]))) {
          this.ext.set(m[3], Number(m[1]));
          usedExt.add(Number(m[1]));
        }
      }
      const table = codecs(section);
      for (const pt of table.keys()) {
        const sig = signature(pt, table);
        if (sig && !this.pt.has(sig) && !this.usedPt.has(pt)) this.pt.set(sig, pt);
        this.usedPt.add(pt);
      }
    }
  }

  extId(uri, wanted) {
    let id = this.ext.get(uri);
    if (id === undefined) {
      const used = new Set(this.ext.values());
      id = used.has(wanted) ? [...range(1, 14)].find((n) => !used.has(n)) : wanted;
      this.ext.set(uri, id);
    }
    return id;
  }

  ptFor(sig, wanted) {
    let pt = this.pt.get(sig);
    if (pt === undefined) {
      pt = !this.usedPt.has(wanted) ? wanted : DYNAMIC.find((n) => !this.usedPt.has(n));
      this.pt.set(sig, pt);
      this.usedPt.add(pt);
    }
    return pt;
  }

  /** Renumber a server offer with this connection's numbers. */
  harmonize(sdp) {
    const out = [];
    for (const section of sections(sdp)) {
      const table = codecs(section);
      const remap = new Map(); // old pt -> new pt (null: dropped)
      const taken = new Set();
      // Plain codecs first: rtx numbers depend on them.
      const order = [...table.keys()].sort((a, b) => (table.get(a).name === "rtx") - (table.get(b).name === "rtx"));
      for (const pt of order) {
        const sig = signature(pt, table);
        const next = sig ? this.ptFor(sig, pt) : pt;
        if (taken.has(next)) {
          remap.set(pt, null);
          continue;
        }
        taken.add(next);
        remap.set(pt, next);
      }
      const to = (pt) => (remap.has(pt) ? remap.get(pt) : pt);
      for (const line of section) {
        if (line.startsWith("m=")) {
          const parts = line.split(" ");
          const pts = parts.slice(3).map((p) => to(Number(p))).filter((p) => p !== null);
          out.push([...parts.slice(0, 3), ...pts].join(" "));
          continue;
        }
        const ext = EXT.exec(line);
        if (ext) {
          out.push(line.replace(EXT, `a=extmap:${this.extId(ext[3], Number(ext[1]))}$2 $3`));
          continue;
        }
        const m = /^a=(rtpmap|fmtp|rtcp-fb):(\d+)(.*)$/.exec(line);
        if (m) {
          const next = to(Number(m[2]));
          if (next === null) continue;
          const rest = m[1] === "fmtp" ? m[3].replace(/apt=(\d+)/, (_, apt) => `apt=${to(Number(apt))}`) : m[3];
          out.push(`a=${m[1]}:${next}${rest}`);
          continue;
        }
        out.push(line);
      }
    }
    return out.join("\r\n") + "\r\n";
  }
}
