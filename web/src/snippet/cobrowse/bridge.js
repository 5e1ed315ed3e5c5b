// Co-browse hooks inside the widget chunk. Kept tiny: it only listens on the customer's socket
// and loads the co-browse chunk (rrweb's recorder and the sharing UI, ./index.js) when an agent
// asks to see the page, or at once when this tab was already sharing before a page load (the
// consent is kept per tab in sessionStorage, so a co-browse follows the customer across pages of
// the site and ends with the tab).

const FORWARDED = [
  "cobrowse.requested",
  "cobrowse.state",
  "cobrowse.snapshot_needed",
  "cobrowse.pointer",
  "control.state",
  "control.action",
  "session.ended",
];

export function consentKey(site) {
  return `tandem:${site}:cobrowse`;
}

export function wasSharing(site) {
  try {
    return sessionStorage.getItem(consentKey(site)) === "1";
  } catch {
    return false;
  }
}

/**
 * @param {object} widget the Widget (its socket, request() and the loader's host hooks)
 */
export function attachCobrowse(widget) {
  const { host, socket } = widget;
  const site = host.config.site;
  let controller = null;
  let loading = null;
  const queued = [];

  const load = () => {
    if (!loading) {
      loading = host.loadChunk("cobrowse").then((mod) => {
        controller = mod.create({
          socket,
          request: (event, payload) => widget.request(event, payload),
          root: host.root,
          config: host.config,
          ticketId: () => (widget.ticket ? widget.ticket.id : null),
        });
        for (const [name, payload] of queued.splice(0)) controller.on(name, payload);
        return controller;
      });
      loading.catch(() => {
        loading = null;
      });
    }
    return loading;
  };

  const deliver = (name, payload) => {
    if (controller) return controller.on(name, payload);
    // Before the chunk is here only a request (or a tab that was sharing) is worth loading it for.
    if (name !== "cobrowse.requested" && !loading && !wasSharing(site)) return;
    queued.push([name, payload]);
    load().catch(() => {});
  };

  for (const name of FORWARDED) socket.on(name, (payload) => deliver(name, payload));
  const connected = () => {
    if (controller || wasSharing(site)) deliver("connect", {});
  };
  socket.on("connect", connected);
  if (socket.connected) connected();
  return { load };
}
