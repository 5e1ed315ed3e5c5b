/**
 * Attach a stylesheet to a shadow root. Constructed stylesheets are CSSOM, so they work under a
 * host page's strict CSP (`style-src 'self'` blocks <style> elements, not CSSOM).
 */
export function adoptCss(root, text) {
  if (window.CSSStyleSheet && "replaceSync" in CSSStyleSheet.prototype && "adoptedStyleSheets" in root) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(text);
    root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet];
  } else {
    const style = document.createElement("style");
    style.textContent = text;
    root.append(style);
  }
}
