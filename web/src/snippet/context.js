// The context packet: what the agent needs to know about the customer's situation.
// Field limits mirror signaling/protocol.py (ContextPacket).

const cut = (text, max) => String(text || "").slice(0, max);

function viewport() {
  return { width: Math.round(window.innerWidth), height: Math.round(window.innerHeight) };
}

/** The full packet sent with help.request. */
export function contextPacket(app, geo) {
  let timeZone = "";
  try {
    timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch {
    // very old browsers
  }
  const packet = {
    url: cut(location.href, 2048),
    title: cut(document.title, 512),
    referrer: cut(document.referrer, 2048),
    userAgent: cut(navigator.userAgent, 1024),
    screen: { width: screen.width, height: screen.height },
    viewport: viewport(),
    language: cut(navigator.language, 35),
    timeZone: cut(timeZone, 64),
    app: app || {},
  };
  if (geo) packet.geo = geo;
  return packet;
}

/** What may change during a session (a new page, new app fields). */
export function contextPatch(app) {
  return { url: cut(location.href, 2048), title: cut(document.title, 512), viewport: viewport(), app };
}

/** The browser's location, only when the customer allows it; null otherwise. */
export function askGeo() {
  return new Promise((resolve) => {
    if (!navigator.geolocation) return resolve(null);
    navigator.geolocation.getCurrentPosition(
      (pos) =>
        resolve({
          latitude: pos.coords.latitude,
          longitude: pos.coords.longitude,
          accuracy: pos.coords.accuracy,
        }),
      () => resolve(null),
      { timeout: 10000, maximumAge: 600000 },
    );
  });
}
