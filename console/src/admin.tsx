/**
 * Admin (only with the ADMIN_API_KEY): users (list, create), keys (create: the key is shown this
 * once; revoke), tiers and their limits, and the live queue (depth and requests finished a second,
 * read every two seconds). Everything goes through /api/v1/admin/*, which checks the key itself:
 * hiding the page from others is a courtesy, not the protection.
 */
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { deleteJson, getJson, postJson, type AdminKey, type AdminQueue, type AdminTier, type AdminUser } from "./api.js";
import { ErrorNote, PageHeading, When, DataTable } from "./ui.js";

const QUEUE_POLL_MS = 2000;
const limit = (n: number | null) => (n === null ? "unlimited" : n.toLocaleString());

function QueueStats() {
  const [queue, setQueue] = useState<AdminQueue | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const controller = new AbortController();
    const load = () =>
      getJson<AdminQueue>("/api/v1/admin/queue", controller.signal)
        .then((q) => {
          setQueue(q);
          setError(null);
        })
        .catch((failure) => controller.signal.aborted || setError(failure))
        .finally(() => {
          if (!controller.signal.aborted) timer = setTimeout(load, QUEUE_POLL_MS);
        });
    void load();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, []);
  return (
    <section class="card" aria-labelledby="queue-heading">
      <h3 id="queue-heading">Queue</h3>
      <ErrorNote error={error} />
      {queue && (
        <dl class="stats" aria-live="polite" data-testid="queue-stats">
          <div>
            <dt>Waiting in the queue</dt>
            <dd data-testid="queue-ready">{queue.ready}</dd>
          </div>
          <div>
            <dt>Open requests</dt>
            <dd data-testid="queue-open">{queue.open_requests}</dd>
          </div>
          <div>
            <dt>Finished a second</dt>
            <dd data-testid="queue-throughput">{queue.throughput_per_second.toFixed(2)}</dd>
          </div>
          <div>
            <dt>Finished, last {queue.window_seconds} s</dt>
            <dd data-testid="queue-finished">{queue.finished_recently}</dd>
          </div>
        </dl>
      )}
      {queue && <p class="hint">Queue {queue.queue}; read every {QUEUE_POLL_MS / 1000} s.</p>}
    </section>
  );
}

function NewKey(props: { created: AdminKey; onRevoked: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [revoked, setRevoked] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  // The key appears once: take the focus there so a screen reader reads it out.
  useEffect(() => ref.current?.focus(), [props.created.key_id]);
  const revoke = () =>
    deleteJson(`/api/v1/admin/keys/${encodeURIComponent(props.created.key_id)}`).then(() => {
      setRevoked(true);
      props.onRevoked();
    }, setError);
  return (
    <div class="card key-once" ref={ref} tabIndex={-1} role="status" data-testid="new-key">
      <p>
        New key <code>{props.created.key_id}</code> for <strong>{props.created.user_id}</strong>
        {revoked ? " (revoked)" : ""}. Copy it now: it is not shown again.
      </p>
      <p>
        <code data-testid="new-key-value">{props.created.api_key}</code>
      </p>
      {!revoked && (
        <button type="button" class="danger" onClick={revoke}>
          Revoke this key
        </button>
      )}
      <ErrorNote error={error} />
    </div>
  );
}

function Users(props: { tiers: AdminTier[] }) {
  const [users, setUsers] = useState<AdminUser[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [userId, setUserId] = useState("");
  const [tier, setTier] = useState("free");
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<AdminKey | null>(null);
  const reload = useCallback(() => {
    getJson<{ data: AdminUser[] }>("/api/v1/admin/users").then((answer) => setUsers(answer.data), setError);
  }, []);
  useEffect(reload, [reload]);

  const create = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await postJson("/api/v1/admin/users", { user_id: userId.trim(), tier });
      setUserId("");
      reload();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const newKey = (id: string) =>
    postJson<AdminKey>(`/api/v1/admin/users/${encodeURIComponent(id)}/keys`).then((key) => {
      setCreated(key);
      reload();
    }, setError);

  return (
    <section class="card" aria-labelledby="users-heading">
      <h3 id="users-heading">Users</h3>
      <form class="row" onSubmit={create} aria-label="Create a user">
        <div class="field">
          <label for="new-user-id">User id</label>
          <input id="new-user-id" value={userId} onInput={(e) => setUserId(e.currentTarget.value)} required maxLength={128} autocomplete="off" aria-describedby="new-user-hint" />
          <p id="new-user-hint" class="hint">
            Letters, digits and . _ @ -
          </p>
        </div>
        <div class="field">
          <label for="new-user-tier">Tier</label>
          <select id="new-user-tier" value={tier} onChange={(e) => setTier(e.currentTarget.value)}>
            {(props.tiers.length > 0 ? props.tiers.map((t) => t.name) : ["free"]).map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <span class="visually-hidden" aria-hidden="true">
            &nbsp;
          </span>
          <button type="submit" disabled={busy}>
            {busy ? "Creating…" : "Create user"}
          </button>
        </div>
      </form>
      <ErrorNote error={error} />
      {created && <NewKey created={created} onRevoked={reload} />}
      {users && (
        <DataTable label="Users" testId="users-table" columns={["User", "Tier", "Active keys", "Created", "Keys"]}>
          {users.map((u) => (
            <tr key={u.user_id} data-user-id={u.user_id}>
              <td data-label="User">
                {u.user_id}
                {u.disabled ? " (disabled)" : ""}
              </td>
              <td data-label="Tier">{u.tier}</td>
              <td data-label="Active keys">{u.active_keys}</td>
              <td data-label="Created">
                <When at={u.created_at} />
              </td>
              <td data-label="Keys">
                <button type="button" class="secondary" onClick={() => newKey(u.user_id)} aria-label={`Create a key for ${u.user_id}`}>
                  New key
                </button>
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </section>
  );
}

function RevokeKey() {
  const [keyId, setKeyId] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const revoke = (event: Event) => {
    event.preventDefault();
    setError(null);
    setDone(null);
    deleteJson<{ key_id: string }>(`/api/v1/admin/keys/${encodeURIComponent(keyId.trim())}`).then((answer) => {
      setDone(answer.key_id);
      setKeyId("");
    }, setError);
  };
  return (
    <section class="card" aria-labelledby="revoke-heading">
      <h3 id="revoke-heading">Revoke a key</h3>
      <form onSubmit={revoke}>
        <div class="field">
          <label for="revoke-key-id">Key id</label>
          <input id="revoke-key-id" value={keyId} onInput={(e) => setKeyId(e.currentTarget.value)} required placeholder="key_…" autocomplete="off" />
        </div>
        <button type="submit" class="danger">
          Revoke
        </button>
      </form>
      <ErrorNote error={error} />
      {done && <p role="status">Key {done} is revoked; it stops working within a second.</p>}
    </section>
  );
}

function Tiers(props: { tiers: AdminTier[] | null; error: unknown }) {
  return (
    <section class="card" aria-labelledby="tiers-heading">
      <h3 id="tiers-heading">Tiers</h3>
      <ErrorNote error={props.error} />
      {props.tiers && (
        <DataTable label="Tiers" testId="tiers-table" columns={["Tier", "Requests a day", "Tokens a day", "Requests a month", "Tokens a month"]}>
          {props.tiers.map((t) => (
            <tr key={t.name}>
              <td data-label="Tier">{t.name}</td>
              <td data-label="Requests a day">{limit(t.limits.daily_requests)}</td>
              <td data-label="Tokens a day">{limit(t.limits.daily_tokens)}</td>
              <td data-label="Requests a month">{limit(t.limits.monthly_requests)}</td>
              <td data-label="Tokens a month">{limit(t.limits.monthly_tokens)}</td>
            </tr>
          ))}
        </DataTable>
      )}
    </section>
  );
}

export function AdminPage() {
  const [tiers, setTiers] = useState<AdminTier[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    getJson<{ data: AdminTier[] }>("/api/v1/admin/tiers").then((answer) => setTiers(answer.data), setError);
  }, []);
  return (
    <>
      <PageHeading>Admin</PageHeading>
      <QueueStats />
      <Users tiers={tiers ?? []} />
      <div class="admin-grid">
        <RevokeKey />
        <Tiers tiers={tiers} error={error} />
      </div>
    </>
  );
}
