// Call and upload hooks inside the widget chunk. Kept tiny: the call chunk (./index.js: WebRTC,
// the call bar, prompts, uploads) loads once the visitor has a session (queued or active), and
// socket events that arrive while it loads are handed over when it is ready.

const FORWARDED = [
  "rtc.offer",
  "call.reoffer",
  "call.invite",
  "call.invite.ended",
  "media.tracks",
  "chat.message",
  "upload.requested",
  "attachment.added",
  "session.ended",
  "connect",
];

/**
 * @param {object} widget the Widget (its socket, view, request() and the loader's host hooks)
 * @returns {{viewChanged: () => void}}
 */
export function attachCall(widget) {
  const { host, socket } = widget;
  let ui = null;
  let loading = null;
  const queued = [];
  const inSession = () => widget.view === "queued" || widget.view === "active";

  const load = () => {
    if (!loading) {
      loading = host.loadChunk("call").then((mod) => {
        ui = mod.mount(widget);
        for (const [name, payload] of queued.splice(0)) ui.on(name, payload);
        return ui;
      });
      loading.catch(() => {
        loading = null;
        queued.length = 0;
      });
    }
    return loading;
  };

  const deliver = (name, payload) => {
    if (ui) return ui.on(name, payload);
    if (name === "connect") return; // nothing to rejoin before the call chunk exists
    if (!loading && !inSession()) return;
    queued.push([name, payload]);
    load().catch(() => {});
  };
  for (const name of FORWARDED) socket.on(name, (payload) => deliver(name, payload));
  return {
    /** Files an agent sent, from a session state (a reload): shown like live ones. */
    sentFiles(ticketId, files) {
      for (const attachment of files || []) deliver("attachment.added", { ticketId, attachment });
    },
    viewChanged() {
      if (ui) ui.update();
      else if (inSession()) load().catch(() => {});
    },
  };
}
