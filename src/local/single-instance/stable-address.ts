import net from "node:net";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";
import { ExchangeTap, type ObservedAnswer } from "./exchange-tap.ts";

export interface AddressTarget {
  instanceId: string;
  host: string;
  port: number;
}

/**
 * Ends a client's connection abruptly, as a dead address does: a reset, unless its side was already
 * ended (the instance's FIN piped through): a reset then may find the shutdown still pending, which
 * libuv refuses (EINVAL), and Node then never closes the handle: no 'close', and the process spins
 * at exit (the single-instance drill that wrote its report and hung). A plain destroy then.
 */
export function abortClient(client: net.Socket): void {
  if (client.destroyed) return;
  if (client.writableEnded) client.destroy();
  else client.resetAndDestroy();
}

/**
 * The Elastic IP of seed 003: a fixed address (a listener on host:port) that forwards TCP to
 * whichever instance it is associated with, and to nothing while it is associated with none (a
 * client then sees its connection reset: the downtime a single instance cannot avoid). It does not
 * retry, balance or check health: an address is not a load balancer.
 */
export class StableAddress {
  private server?: net.Server;
  private target?: AddressTarget;
  private readonly sockets = new Set<net.Socket>();
  /**
   * Called once per client request when its answer has gone through (the dashboard's traffic
   * meter, as the load balancer's `observer`). Set, the address reads the HTTP exchanges it
   * forwards; a connection it resets for want of an instance is one failed request.
   */
  observer?: (answer: ObservedAnswer) => void;

  /** A connection it fails to forward is an event; the next one is forwarded as usual. */
  private readonly guard: ControllerGuard;

  constructor(
    readonly listener: { host: string; port: number },
    private readonly events: EventPublisher,
  ) {
    this.guard = new ControllerGuard({ controller: "stable-address", events });
  }

  get address(): string {
    return `${this.listener.host}:${this.listener.port}`;
  }

  get url(): string {
    return `http://${this.address}`;
  }

  get associatedWith(): string | undefined {
    return this.target?.instanceId;
  }

  async listen(): Promise<void> {
    const server = net.createServer(
      this.guard.wrap((client: net.Socket) => {
        try {
          this.forward(client);
        } catch (error) {
          client.destroy();
          throw error;
        }
      }, "the next connection is forwarded as usual"),
    );
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.listener.port, this.listener.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const bound = server.address();
    if (bound && typeof bound === "object") this.listener.port = bound.port;
  }

  /** Points the address at an instance (the new instance's `associate-address` at boot). */
  associate(target: AddressTarget): void {
    const previousInstanceId = this.target?.instanceId;
    this.target = { ...target };
    this.events.publish({
      type: "address.associated",
      address: this.address,
      instanceId: target.instanceId,
      ...(previousInstanceId && previousInstanceId !== target.instanceId ? { previousInstanceId } : {}),
    });
  }

  /** The instance is gone: the address points nowhere until a replacement associates it. */
  disassociate(instanceId: string, reason: string): void {
    if (this.target?.instanceId !== instanceId) return;
    this.target = undefined;
    this.events.publish({ type: "address.disassociated", address: this.address, instanceId, reason });
  }

  private forward(client: net.Socket): void {
    const target = this.target;
    const observer = this.observer;
    if (!target) {
      abortClient(client);
      observer?.({ statusCode: 0, latencyMs: 0 });
      return;
    }
    this.sockets.add(client);
    const upstream = net.connect(target.port, target.host);
    this.sockets.add(upstream);
    const tap =
      observer &&
      new ExchangeTap(target.instanceId, observer, (error) =>
        this.guard.report(error, "the connection is forwarded on; its requests go uncounted"),
      );
    if (tap) {
      client.on("data", (chunk: Buffer) => tap.request(chunk));
      upstream.on("data", (chunk: Buffer) => tap.answer(chunk));
      // The instance ended the connection: an answer delimited by its end is complete.
      upstream.once("end", () => tap.close("ended"));
    }
    const close = () => {
      tap?.close("closed");
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", close);
    upstream.on("error", () => {
      // The instance died mid-connection: the client sees a reset, as with a real address.
      tap?.close("reset");
      abortClient(client);
      close();
    });
    client.on("close", close);
    upstream.on("close", close);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
