// The page's address as the customer moves around a single-page app. `history.pushState` and
// `replaceState` fire no event, so the address is also compared once a second (reading
// `location.href` costs nothing worth counting); `popstate`, `hashchange` and the Navigation
// API's `navigatesuccess` (where the browser has it) report the rest at once. Used by the chat
// widget (the ticket's page history) and by co-browse (the address over the agent's view).

const POLL_MS = 1000;

/**
 * Call `onChange(href)` each time the address changes; returns a function that stops watching.
 * @param {(href: string) => void} onChange
 */
export function watchLocation(onChange) {
  let last = location.href;
  const check = () => {
    const href = location.href;
    if (href === last) return;
    last = href;
    onChange(href);
  };
  const nav = window.navigation;
  addEventListener("popstate", check);
  addEventListener("hashchange", check);
  if (nav && typeof nav.addEventListener === "function") nav.addEventListener("navigatesuccess", check);
  const timer = setInterval(check, POLL_MS);
  return () => {
    removeEventListener("popstate", check);
    removeEventListener("hashchange", check);
    if (nav && typeof nav.removeEventListener === "function") nav.removeEventListener("navigatesuccess", check);
    clearInterval(timer);
  };
}
