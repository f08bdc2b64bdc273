/**
 * amqplib writes every AMQP frame with its own socket write: a confirmed publish is three frames
 * (method, header, body), so three write syscalls, and each ack one more. On loopback a write costs
 * the sender the receiver's TCP work too, and in the bench that was a fifth of the worker's CPU.
 * amqplib gathers its frames in a Mux that drains every channel's frames in one synchronous pass;
 * corking the socket around that pass turns the pass into a single writev. Backpressure is as
 * before: a corked write still answers false past the high-water mark, which ends the pass.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

interface Corkable {
  cork?: () => void;
  uncork?: () => void;
}
interface MuxPrototype {
  _readIncoming(this: { out: Corkable }): void;
  __coalesced?: boolean;
}

let applied = false;

/** Makes every amqplib connection of this process write each pass of its frames at once. Idempotent. */
export function coalesceFrameWrites(): void {
  if (applied) return;
  applied = true;
  const require = createRequire(import.meta.url);
  // The Mux is internal to amqplib (not in its exports map): reached by path from its entry point.
  const muxPath = join(dirname(require.resolve("amqplib")), "lib", "mux.js");
  const proto = (require(muxPath) as { Mux: { prototype: MuxPrototype } }).Mux.prototype;
  if (proto.__coalesced || typeof proto._readIncoming !== "function") return;
  const readIncoming = proto._readIncoming;
  proto._readIncoming = function (this: { out: Corkable }) {
    const out = this.out;
    if (typeof out.cork !== "function" || typeof out.uncork !== "function") return readIncoming.call(this);
    out.cork();
    try {
      readIncoming.call(this);
    } finally {
      out.uncork();
    }
  };
  proto.__coalesced = true;
}
