/** Test-controlled waits: a gate a slowed-down dependency waits on, and a bound on a wait that must not hang. */

export interface Gate {
  /** Resolves once the first caller has reached the gate. */
  reached: Promise<void>;
  /** Waits until the gate is opened (called by the slowed-down dependency). */
  pass(): Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let reach!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((resolve) => (reach = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  return {
    reached,
    pass: () => {
      reach();
      return opened;
    },
    open,
  };
}

/** Fails instead of hanging when `work` waits on something (a lock, a pool) it should not wait on. */
export async function withinSeconds<T>(seconds: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${seconds} s`)), seconds * 1000);
  });
  try {
    return await Promise.race([work, bound]);
  } finally {
    clearTimeout(timer);
  }
}
