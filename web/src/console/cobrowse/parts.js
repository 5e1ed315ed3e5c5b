// A co-browse is recorded in parts when the server node holding the session changes while the
// customer shares (docs/protocol.md, "Co-browse"): each part is a `recording` attachment whose
// meta names its co-browse (`share`) and its place (`part`). One replay plays them all, in order.

const partOf = (a) => Number((a.meta && a.meta.part) || 1);

/** The recording attachments of `a`'s co-browse, in part order (`a` alone if unnamed). */
export function recordingParts(all, a) {
  const share = a.meta && a.meta.share;
  if (!share) return [a];
  return all.filter((b) => b.kind === "recording" && b.meta && b.meta.share === share).sort((x, y) => partOf(x) - partOf(y));
}

/** Whether `a` is the first part present of its co-browse (where its one replay button goes). */
export function firstPart(all, a) {
  return recordingParts(all, a)[0] === a;
}
