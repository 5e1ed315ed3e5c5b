import { h } from "../../shared/dom.js";
import * as auth from "../auth.js";

export function loginView(root, done) {
  const email = h("input", { type: "email", id: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", id: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "form-error", role: "alert", hidden: !auth.logoutReason }, auth.logoutReason);
  const submit = h("button", { type: "submit", class: "btn primary block" }, "Sign in");
  const form = h(
    "form",
    {
      class: "login-card",
      onSubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        submit.textContent = "Signing in…";
        error.hidden = true;
        try {
          await auth.login(email.value.trim(), password.value);
          done();
        } catch (err) {
          error.textContent =
            err.status === 401 ? "That email and password don't match an agent account." : err.message;
          error.hidden = false;
          submit.disabled = false;
          submit.textContent = "Sign in";
          password.select();
        }
      },
    },
    h("div", { class: "brand big" }, h("span", { class: "logo", "aria-hidden": "true" }), "Tandem"),
    h("h1", null, "Sign in to the console"),
    h("p", { class: "muted" }, "Answer customers with their context at hand."),
    h("label", { for: "email" }, "Email"),
    email,
    h("label", { for: "password" }, "Password"),
    password,
    error,
    submit,
  );
  root.replaceChildren(h("div", { class: "login" }, form));
  email.focus();
  return () => {};
}
