/**
 * The worker's outcomes on their way to the collector, published in bundles: the outcomes that
 * finish while the previous publish waits for its broker confirm go out together in the next
 * message (one publish, one confirm, one delivery, one ack for all of them). An idle worker
 * publishes each outcome at once, alone; under load a message carries as many outcomes as finished
 * within one confirm's round trip, and, while messages wait in line for a call slot (the worker is
 * the bottleneck, and the requests behind wait anyway), within a few milliseconds more. Each caller's promise settles with its own bundle's confirm, so
 * a request message is acked only once its outcome is in the broker.
 */
import { encodeOutcomes, MAX_OUTCOMES_PER_MESSAGE, type OutcomeMessage } from "../../domain/contracts.js";
import { Batcher } from "../../domain/batching.js";
import type { MessageQueue } from "../../domain/ports.js";

export class OutcomePublisher {
  private readonly bundles: Batcher<OutcomeMessage>;

  /** `lingerMs`: how long an outcome may wait for others before its message goes (asked per message). */
  constructor(queue: MessageQueue, resultsQueue: string, onPublished: (outcomes: number) => void, lingerMs: () => number, maxPerMessage = 64) {
    this.bundles = new Batcher<OutcomeMessage>(
      async (outcomes) => {
        await queue.publish(resultsQueue, encodeOutcomes(outcomes));
        onPublished(outcomes.length);
      },
      // One bundle in flight: what finishes meanwhile waits for it and shares the next message.
      { maxBatch: Math.min(MAX_OUTCOMES_PER_MESSAGE, Math.max(1, maxPerMessage)), maxInFlight: 1, lingerMs },
    );
  }

  /** Resolves once the broker confirmed the message that carries this outcome. */
  publish(outcome: OutcomeMessage, traceparent?: string): Promise<void> {
    return this.bundles.add(traceparent === undefined ? outcome : { ...outcome, traceparent });
  }
}
