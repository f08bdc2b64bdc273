/**
 * The console's shell: sign-in, the banner with its navigation, and a hash router (`#/playground`,
 * `#/requests`, `#/requests/<id>`, `#/quota`, `#/batches`, `#/webhooks`, `#/admin`), so the server serves one page
 * and a reload keeps the page. The admin key (ADMIN_API_KEY) signs in to the admin page only; a
 * user's key to every other page. On each page change the page's heading takes the focus: a screen reader announces where
 * the user is, and the keyboard starts from there.
 */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, getJson, session, type Quota } from "./api.js";
import { Playground } from "./playground.js";
import { RequestDetail, Requests } from "./requests.js";
import { QuotaPage } from "./quota.js";
import { BatchesPage } from "./batches.js";
import { WebhooksPage } from "./webhooks.js";
import { AdminPage } from "./admin.js";
import { ErrorNote } from "./ui.js";
import "./styles.css";

type Route = { page: "playground" } | { page: "requests" } | { page: "detail"; id: string } | { page: "quota" } | { page: "batches" } | { page: "webhooks" } | { page: "admin" };

/** Who signed in: a user (by the quota route) or the operator (by an admin route). */
type Who = { userId: string; admin: boolean };

/**
 * Which kind of key this is. A user's key answers the quota route; the admin key is no user's, so
 * that answers 401 and the admin queue route is asked instead. Anything else is the first refusal.
 */
async function identify(): Promise<Who> {
  try {
    return { userId: (await getJson<Quota>("/api/v1/quota")).user_id, admin: false };
  } catch (failure) {
    if (!(failure instanceof ApiError) || failure.status !== 401 || session.key() === "") throw failure;
    try {
      await getJson("/api/v1/admin/queue");
    } catch {
      throw failure;
    }
    return { userId: "admin", admin: true };
  }
}

function parseRoute(hash: string): Route {
  const path = hash.replace(/^#\/?/, "");
  const detail = /^requests\/([0-9a-fA-F-]{36})$/.exec(path);
  if (detail) return { page: "detail", id: detail[1] as string };
  if (path === "requests") return { page: "requests" };
  if (path === "quota") return { page: "quota" };
  if (path === "batches") return { page: "batches" };
  if (path === "webhooks") return { page: "webhooks" };
  if (path === "admin") return { page: "admin" };
  return { page: "playground" };
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onHash = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  return route;
}

function SignIn(props: { onSignedIn: (who: Who) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    session.signIn(key);
    try {
      // The quota route answers only to a valid key: a cheap way to check it before going on.
      props.onSignedIn(await identify());
    } catch (failure) {
      session.signOut();
      setError(failure instanceof ApiError && failure.status === 401 ? new Error(`Sign-in failed: ${failure.message}`) : failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" tabIndex={-1} class="sign-in">
      <h2>Sign in</h2>
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
          aria-describedby="api-key-hint"
        />
        <p id="api-key-hint" class="hint">
          Your key stays in this browser tab only (session storage). Leave it empty where the platform allows anonymous access.
        </p>
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <ErrorNote error={error} />
    </main>
  );
}

const NAV: Array<{ href: string; label: string; pages: Route["page"][]; admin: boolean }> = [
  { href: "#/playground", label: "Playground", pages: ["playground"], admin: false },
  { href: "#/requests", label: "My requests", pages: ["requests", "detail"], admin: false },
  { href: "#/quota", label: "Quota", pages: ["quota"], admin: false },
  { href: "#/batches", label: "Batches", pages: ["batches"], admin: false },
  { href: "#/webhooks", label: "Webhooks", pages: ["webhooks"], admin: false },
  { href: "#/admin", label: "Admin", pages: ["admin"], admin: true },
];

function App() {
  const routed = useRoute();
  const [who, setWho] = useState<Who | null>(null);
  const userId = who?.userId ?? null;
  // The admin key opens the admin page only, and a user's key every page but that one.
  const route: Route = who?.admin ? { page: "admin" } : routed.page === "admin" ? { page: "playground" } : routed;
  const [checking, setChecking] = useState(session.key() !== null);

  // A reload keeps the tab's key: check it once instead of asking again.
  useEffect(() => {
    if (session.key() === null) return;
    identify()
      .then(setWho)
      .catch(() => session.signOut())
      .finally(() => setChecking(false));
  }, []);

  const signOut = () => {
    session.signOut();
    setWho(null);
  };

  return (
    <>
      {/* Not a plain #main link: the hash is the router's, so the link moves the focus itself. */}
      <a
        class="skip"
        href="#main"
        onClick={(event) => {
          event.preventDefault();
          document.getElementById("main")?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="banner">
        <h1>ml-inference console</h1>
        {userId !== null && (
          <>
            <nav aria-label="Console">
              <ul>
                {NAV.filter((item) => item.admin === who?.admin).map((item) => (
                  <li key={item.href}>
                    <a href={item.href} aria-current={item.pages.includes(route.page) ? "page" : undefined}>
                      {item.label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
            <p class="who">
              Signed in as <strong data-testid="user-id">{userId}</strong>{" "}
              <button type="button" class="link" onClick={signOut}>
                Sign out
              </button>
            </p>
          </>
        )}
      </header>
      {checking ? (
        <main id="main" tabIndex={-1}>
          <p role="status">Checking your key…</p>
        </main>
      ) : userId === null ? (
        <SignIn onSignedIn={setWho} />
      ) : (
        <main id="main" tabIndex={-1}>
          {route.page === "playground" && <Playground />}
          {route.page === "requests" && <Requests />}
          {route.page === "detail" && <RequestDetail id={route.id} />}
          {route.page === "quota" && <QuotaPage />}
          {route.page === "batches" && <BatchesPage />}
          {route.page === "webhooks" && <WebhooksPage />}
          {route.page === "admin" && <AdminPage />}
        </main>
      )}
    </>
  );
}

render(<App />, document.getElementById("app") as HTMLElement);
