import type { FleetBus } from "../fleet/fleet-bus.ts";
import { type EventBus, type EventTopic, InProcessEventBus, type OperationalEvent } from "./event-bus.ts";

/**
 * Operational events across replicas: every replica publishes on a Redis
 * channel per topic and delivers what arrives there (its own events included,
 * once) to its local subscribers. Each event names the replica it came from.
 */
export class RedisEventBus implements EventBus {
  readonly #bus: FleetBus;
  readonly #local = new InProcessEventBus();

  private constructor(bus: FleetBus) {
    this.#bus = bus;
  }

  static async open(bus: FleetBus): Promise<RedisEventBus> {
    const events = new RedisEventBus(bus);
    for (const topic of ["pool", "executions"] as const) {
      await bus.subscribe(`events:${topic}`, (event) => events.#local.publish(event as OperationalEvent));
    }
    return events;
  }

  publish(event: OperationalEvent): void {
    // Events are best effort: a Redis outage must not fail the exec that reports them.
    this.#bus.publish(`events:${event.topic}`, { ...event, replica: this.#bus.replicaId }).catch(() => {});
  }

  subscribe(topic: EventTopic, listener: (event: OperationalEvent) => void): () => void {
    return this.#local.subscribe(topic, listener);
  }
}
