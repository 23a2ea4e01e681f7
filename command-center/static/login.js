// The login page: exchanges user name and password for a session token (POST /auth/login)
// and goes back to the page that sent the user here.

import { currentSession, login, showOutcome } from "/static/common/api.js";

const form = document.getElementById("login-form");
const outcome = form.querySelector("[data-testid=login-error]");

const START_PAGES = ["/", "/dashboard"];

function nextPage(session) {
  // Where this user starts (the login answer says: an inspector's is /field).
  const home = (session && session.home_page) || "/dashboard";
  // Only a path on this site: never follow ?next= to another origin.
  const next = new URLSearchParams(location.search).get("next") || "";
  if (!next.startsWith("/") || next.startsWith("//")) return home;
  // The start page is the dashboard by default: a user whose own start page is another
  // goes there instead.
  return START_PAGES.includes(next.split(/[?#]/)[0]) ? home : next;
}

if (currentSession() && !new URLSearchParams(location.search).has("logout")) {
  location.replace(nextPage(currentSession()));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const button = form.querySelector("button");
  button.disabled = true;
  showOutcome(outcome, null);
  try {
    await login(String(data.get("username")).trim(), String(data.get("password")));
    location.replace(nextPage(currentSession()));
  } catch (error) {
    showOutcome(outcome, error);
    form.querySelector("[name=password]").select();
  } finally {
    button.disabled = false;
  }
});
