/**
 * Quota: for each window (day, month) the request count and the tokens used and reserved against
 * the tier's limits, as bars, with the time each window resets. Read again whenever a request
 * settles anywhere in the console (and on demand), since that is when the numbers move.
 */
import { useEffect } from "preact/hooks";
import { usePolled } from "./polling.js";
import { settled, type Quota, type QuotaWindow } from "./api.js";
import { ErrorNote, PageHeading, When } from "./ui.js";

/** How often the quota is read again while tokens are reserved (a request is still running). */
const OPEN_POLL_MS = 2000;

export function useQuota(): { quota: Quota | null; error: unknown; reload: () => void } {
  // A reservation means a request (perhaps from another tab or client) has yet to settle: look
  // again until none is left, so the bars move when it does.
  const { data: quota, error, reload } = usePolled<Quota>("/api/v1/quota", {
    nextMs: (q) => (q.daily.tokens_reserved > 0 || q.monthly.tokens_reserved > 0 ? OPEN_POLL_MS : null),
    retryMs: null,
  });
  useEffect(() => {
    settled.addEventListener("settled", reload);
    return () => settled.removeEventListener("settled", reload);
  }, [reload]);
  return { quota, error, reload };
}

const pct = (part: number, whole: number) => `${Math.min(100, (part / whole) * 100).toFixed(2)}%`;

/**
 * One bar: `used` (solid) then `reserved` (hatched) out of `limit`. A window without a limit has no
 * bar to fill, so it says so and shows the numbers alone.
 */
function Bar(props: { label: string; used: number; reserved?: number; limit: number | null; unit: string; testId: string }) {
  const reserved = props.reserved ?? 0;
  const used = props.reserved !== undefined ? `${props.used.toLocaleString()} used + ${reserved.toLocaleString()} reserved` : props.used.toLocaleString();
  const numbers = props.limit === null ? `${used} ${props.unit} (no limit)` : `${used} of ${props.limit.toLocaleString()} ${props.unit}`;
  return (
    <div class="quota-bar" data-testid={props.testId} data-used={props.used} data-reserved={reserved} data-limit={props.limit ?? ""}>
      <div class="quota-bar-label" id={`${props.testId}-label`}>
        <span>{props.label}</span>
        <span class="numbers">{numbers}</span>
      </div>
      {props.limit !== null && (
        <div
          class="bar"
          role="meter"
          aria-labelledby={`${props.testId}-label`}
          aria-valuemin={0}
          aria-valuemax={props.limit}
          aria-valuenow={Math.min(props.limit, props.used + reserved)}
          aria-valuetext={numbers}
        >
          <span class="bar-used" style={{ width: pct(props.used, props.limit) }} />
          <span class="bar-reserved" style={{ width: pct(reserved, props.limit) }} />
        </div>
      )}
    </div>
  );
}

function Window(props: { name: "daily" | "monthly"; title: string; usage: QuotaWindow; quota: Quota; compact?: boolean }) {
  const limits = props.quota.limits[props.name];
  const Heading = props.compact ? "h4" : "h3";
  return (
    <section class="quota-window" aria-label={`${props.title} quota`}>
      <Heading>{props.title}</Heading>
      <Bar label="Requests" used={props.usage.requests} limit={limits.requests} unit="requests" testId={`${props.name}-requests`} />
      <Bar
        label="Tokens"
        used={props.usage.tokens_used}
        reserved={props.usage.tokens_reserved}
        limit={limits.tokens}
        unit="tokens"
        testId={`${props.name}-tokens`}
      />
      <p class="hint">
        Resets <When at={props.quota.resets[props.name]} />
      </p>
    </section>
  );
}

export function QuotaBars(props: { quota: Quota; compact?: boolean }) {
  return (
    <div class="quota">
      <Window name="daily" title="Today" usage={props.quota.daily} quota={props.quota} compact={props.compact} />
      <Window name="monthly" title="This month" usage={props.quota.monthly} quota={props.quota} compact={props.compact} />
    </div>
  );
}

export function QuotaPage() {
  const { quota, error, reload } = useQuota();
  return (
    <>
      <PageHeading>Quota</PageHeading>
      <p>
        What your tier allows and what you have used. Tokens of requests still running are <em>reserved</em> until they settle.{" "}
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </p>
      <ErrorNote error={error} />
      {quota ? <QuotaBars quota={quota} /> : !error && <p role="status">Loading…</p>}
    </>
  );
}
