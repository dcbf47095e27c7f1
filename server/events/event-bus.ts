/**
 * Operational events (pool changes, executions started and finished). The
 * embedded default delivers them in-process; a Redis implementation (later)
 * carries them across replicas behind the same interface.
 */
export type EventTopic = "pool" | "executions";

export interface OperationalEvent {
  topic: EventTopic;
  kind: string;
  at: string;
  [field: string]: unknown;
}

export interface EventBus {
  publish(event: OperationalEvent): void;
  /** Returns a function that unsubscribes. */
  subscribe(topic: EventTopic, listener: (event: OperationalEvent) => void): () => void;
}

export class InProcessEventBus implements EventBus {
  readonly #listeners = new Map<EventTopic, Set<(event: OperationalEvent) => void>>();

  publish(event: OperationalEvent): void {
    for (const listener of this.#listeners.get(event.topic) ?? []) {
      try {
        listener(event);
      } catch {
        // A failing subscriber must not stop delivery to the others.
      }
    }
  }

  subscribe(topic: EventTopic, listener: (event: OperationalEvent) => void): () => void {
    let set = this.#listeners.get(topic);
    if (!set) {
      set = new Set();
      this.#listeners.set(topic, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }
}
