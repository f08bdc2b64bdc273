/**
 * The run claims of the messages a worker holds, sent ahead of their calls and together. A message
 * that arrives while every call slot is taken waits in line anyway, so its claim need not go out at
 * once: the claims of the messages at the back of the line are sent all in one go (one pipelined
 * write to Redis instead of one write and one wake-up each) once fewer than `ahead` claimed
 * messages are left before the first of them, early enough that it is answered before that message
 * gets its slot. An idle worker's line is short, so each claim goes at once.
 *
 * Tickets start in the order they entered (the call slots are first come, first served); a ticket
 * that starts unclaimed sends its claim, and every other one waiting, at that moment.
 */
export interface ClaimTicket<R> {
  readonly requestId: string;
  claim?: Promise<R>;
}

export class ClaimAhead<R> {
  private readonly line: Array<ClaimTicket<R>> = [];

  constructor(
    private readonly claimRun: (requestId: string) => Promise<R>,
    private readonly ahead: number,
  ) {
    if (!Number.isInteger(ahead) || ahead < 1) throw new Error(`claims ahead must be a whole number ≥ 1, got ${ahead}`);
  }

  /** A message joins the back of the line; its claim goes out now when the line before it is short. */
  enter(requestId: string): ClaimTicket<R> {
    const ticket: ClaimTicket<R> = { requestId };
    this.line.push(ticket);
    this.sendWhenDue();
    return ticket;
  }

  /** The message leaves the line for its call: resolves with its claim's answer. */
  start(ticket: ClaimTicket<R>): Promise<R> {
    const at = this.line.indexOf(ticket);
    if (at !== -1) this.line.splice(at, 1);
    if (!ticket.claim) this.sendAll(ticket);
    this.sendWhenDue();
    return ticket.claim!;
  }

  /** Messages in line, claimed or not. */
  get waiting(): number {
    return this.line.length;
  }

  private sendWhenDue(): void {
    const firstUnclaimed = this.line.findIndex((ticket) => !ticket.claim);
    if (firstUnclaimed !== -1 && firstUnclaimed < this.ahead) this.sendAll();
  }

  /** Every claim not sent yet goes out now, in one tick (so in one pipelined write). */
  private sendAll(extra?: ClaimTicket<R>): void {
    for (const ticket of extra ? [extra, ...this.line] : this.line) {
      if (ticket.claim) continue;
      ticket.claim = this.claimRun(ticket.requestId);
      // Awaited only when the ticket starts: until then a failure must not count as unhandled.
      ticket.claim.catch(() => undefined);
    }
  }
}
