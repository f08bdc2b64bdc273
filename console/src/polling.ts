/** Reading an API path now and again while a page shows it: the one owner of the console's live lists. */
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { getJson } from "./api.js";

export interface PollOptions<T> {
  /** Milliseconds until the next read after this answer; null: none until reload() is called. */
  nextMs: (answer: T) => number | null;
  /** After a failed read (shown as the error, the last answer kept): milliseconds until the next; null: none. */
  retryMs: number | null;
}

/** Reads `path` at once, then as `options` say; reload() reads it now. Stops when the component goes away. */
export function usePolled<T>(path: string, options: PollOptions<T>): { data: T | null; error: unknown; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const live = useRef(true);
  // The latest options, without making reload() a new function on every render.
  const settings = useRef(options);
  settings.current = options;
  const reload = useCallback(() => {
    clearTimeout(timer.current);
    const again = (ms: number | null) => {
      if (ms !== null && live.current) timer.current = setTimeout(reload, ms);
    };
    getJson<T>(path).then(
      (answer) => {
        setData(answer);
        setError(null);
        again(settings.current.nextMs(answer));
      },
      (failure: unknown) => {
        setError(failure);
        again(settings.current.retryMs);
      },
    );
  }, [path]);
  useEffect(() => {
    live.current = true;
    reload();
    return () => {
      live.current = false;
      clearTimeout(timer.current);
    };
  }, [reload]);
  return { data, error, reload };
}
