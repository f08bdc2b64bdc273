import { test } from "node:test";
import assert from "node:assert/strict";
import { SlotPool } from "./slot-pool.js";
import { AppError } from "../errors.js";

test("slots are handed out, then callers wait in FIFO order", async () => {
  const pool = new SlotPool(["a", "b"], 2);
  const a = await pool.acquire();
  const b = await pool.acquire();
  assert.deepEqual([a, b].sort(), ["a", "b"]);
  assert.equal(pool.running, 2);
  const order: string[] = [];
  const w1 = pool.acquire().then((s) => order.push(`w1:${s}`));
  const w2 = pool.acquire().then((s) => order.push(`w2:${s}`));
  assert.equal(pool.waiting, 2);
  pool.release(a);
  pool.release(b);
  await Promise.all([w1, w2]);
  assert.deepEqual(order, [`w1:${a}`, `w2:${b}`]);
});

test("a full wait queue refuses with queue_full and a Retry-After", async () => {
  const pool = new SlotPool(["a"], 1, 3);
  await pool.acquire();
  void pool.acquire();
  await assert.rejects(pool.acquire(), (e: unknown) => e instanceof AppError && e.code === "queue_full" && e.status === 503 && e.retryAfterSeconds === 3);
});

test("queue limit 0 refuses as soon as every slot is taken", async () => {
  const pool = new SlotPool(["a"], 0);
  await pool.acquire();
  await assert.rejects(pool.acquire(), (e: unknown) => e instanceof AppError && e.code === "queue_full");
});

test("an aborted waiter leaves the line and never takes a slot", async () => {
  const pool = new SlotPool(["a"], 4);
  const a = await pool.acquire();
  const controller = new AbortController();
  const waiting = pool.acquire(controller.signal);
  assert.equal(pool.waiting, 1);
  controller.abort(new Error("gone"));
  await assert.rejects(waiting, /gone/);
  assert.equal(pool.waiting, 0);
  pool.release(a);
  assert.equal(pool.running, 0);
});

test("close refuses waiters and later callers", async () => {
  const pool = new SlotPool(["a"], 4);
  await pool.acquire();
  const waiting = pool.acquire();
  pool.close(new AppError("service_unavailable", "bye"));
  await assert.rejects(waiting, (e: unknown) => e instanceof AppError && e.code === "service_unavailable");
  await assert.rejects(pool.acquire(), (e: unknown) => e instanceof AppError && e.code === "service_unavailable");
});
