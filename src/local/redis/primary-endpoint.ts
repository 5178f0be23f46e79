import net from "node:net";
import { Redis } from "ioredis";

/**
 * The local Redis primary endpoint: one loopback address that always reaches the node Sentinel
 * names primary, as ElastiCache's primary endpoint does. Instances get it as REDIS_URL, so a
 * service using any ordinary Redis client follows a failover without knowing Sentinel.
 *
 * It is a TCP forwarder: every client connection is piped to the current primary. When Sentinel
 * names another primary (`+switch-master`, or its answer to `SENTINEL get-master-addr-by-name`,
 * asked every second in case a message was missed), the connections to the old primary are closed,
 * as the endpoint's DNS flip ends ElastiCache clients' connections; the clients reconnect, and
 * their new connections go to the new primary.
 */

export interface PrimaryAddress {
  host: string;
  port: number;
}

const same = (a: PrimaryAddress | undefined, b: PrimaryAddress | undefined) =>
  a !== undefined && b !== undefined && a.host === b.host && a.port === b.port;

/** Only loopback: the endpoint never forwards off the machine, whatever a Sentinel says. */
const isLoopback = (host: string) => /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === "::1";

/** `+switch-master`'s message: "<name> <old-ip> <old-port> <new-ip> <new-port>" (ours only). */
export function parseSwitchMaster(message: string, masterName: string): PrimaryAddress | undefined {
  const [name, , , host, port] = message.trim().split(/\s+/);
  if (name !== masterName || !host || !port) return undefined;
  return address(host, port);
}

/** `SENTINEL get-master-addr-by-name`'s reply: [ip, port], or null for an unknown name. */
export function parseMasterAddr(reply: unknown): PrimaryAddress | undefined {
  if (!Array.isArray(reply) || reply.length !== 2) return undefined;
  return address(String(reply[0]), String(reply[1]));
}

function address(host: string, port: string): PrimaryAddress | undefined {
  const n = Number(port);
  if (!Number.isInteger(n) || n < 1 || n > 65535) return undefined;
  return { host, port: n };
}

/**
 * What to do when a Sentinel names `reported` primary while the endpoint forwards to `current`:
 * follow it (a loopback address only), and cut the connections to the old primary when it moved.
 * The first report cuts nothing (no connection had anywhere else to go).
 */
export function primaryReported(
  current: PrimaryAddress | undefined,
  reported: PrimaryAddress | undefined,
): { primary: PrimaryAddress | undefined; cutConnectionsTo?: PrimaryAddress } {
  if (!reported || !isLoopback(reported.host) || same(current, reported)) return { primary: current };
  return current ? { primary: reported, cutConnectionsTo: current } : { primary: reported };
}

/**
 * Whether a new client connection is forwarded: there is a primary to forward to, and fewer than
 * `maxConnections` are open (no client can exhaust the runtime's sockets). Refused, it is closed at
 * once: the client sees a reset and reconnects, as to a primary endpoint mid-failover.
 */
export function admitConnection(
  open: number,
  maxConnections: number,
  primary: PrimaryAddress | undefined,
): boolean {
  return primary !== undefined && open < maxConnections;
}

export interface PrimaryEndpointOptions {
  /** Where the endpoint listens: a loopback address. */
  host: string;
  sentinels: PrimaryAddress[];
  masterName: string;
  password: string;
  /** Client connections open at once (default 512); one more is closed at once. */
  maxConnections?: number;
  /** How often Sentinel is asked for the primary, besides its messages (default 1000 ms). */
  pollIntervalMs?: number;
  /** Told when the endpoint follows a new primary (and how many connections it cut). */
  onSwitch?: (to: PrimaryAddress, cutConnections: number) => void;
}

interface Forwarded {
  client: net.Socket;
  upstream: net.Socket;
  to: PrimaryAddress;
}

export class PrimaryEndpoint {
  private server?: net.Server;
  private primary?: PrimaryAddress;
  private readonly open = new Set<Forwarded>();
  private readonly watchers: Redis[] = [];
  private poller?: NodeJS.Timeout;
  private polling = false;
  port = 0;

  constructor(private readonly options: PrimaryEndpointOptions) {
    if (!isLoopback(options.host))
      throw new Error(`the primary endpoint listens on loopback only, not ${options.host}`);
  }

  /** The URL instances get: the endpoint's address with the password (any Redis client reads it). */
  get url(): string {
    return `redis://:${encodeURIComponent(this.options.password)}@${this.options.host}:${this.port}`;
  }

  get connections(): number {
    return this.open.size;
  }

  get current(): PrimaryAddress | undefined {
    return this.primary;
  }

  /** Follows `primary` now (the node the runtime started as primary), then Sentinel's word. */
  async start(primary?: PrimaryAddress): Promise<void> {
    this.follow(primary);
    this.server = net.createServer((client) => this.accept(client));
    this.server.maxConnections = (this.options.maxConnections ?? 512) + 16;
    await new Promise<void>((resolve, reject) => {
      this.server?.once("error", reject);
      this.server?.listen(0, this.options.host, () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    for (const sentinel of this.options.sentinels) {
      const watcher = new Redis({
        host: sentinel.host,
        port: sentinel.port,
        password: this.options.password,
        retryStrategy: () => 200,
        lazyConnect: true,
      });
      watcher.on("error", () => undefined);
      watcher.on("message", (_channel: string, message: string) =>
        this.follow(parseSwitchMaster(message, this.options.masterName)),
      );
      this.watchers.push(watcher);
      void watcher.subscribe("+switch-master").catch(() => undefined);
    }
    this.poller = setInterval(() => void this.ask(), this.options.pollIntervalMs ?? 1000);
    this.poller.unref();
  }

  /** Asks the Sentinels, first answer wins: a missed `+switch-master` is made good within a poll. */
  private async ask(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (const sentinel of this.options.sentinels) {
        const client = new Redis({
          host: sentinel.host,
          port: sentinel.port,
          password: this.options.password,
          lazyConnect: true,
          retryStrategy: () => null,
          connectTimeout: 500,
          commandTimeout: 500,
        });
        client.on("error", () => undefined);
        try {
          await client.connect();
          const reported = parseMasterAddr(
            await client.call("SENTINEL", "get-master-addr-by-name", this.options.masterName),
          );
          if (reported) {
            this.follow(reported);
            return;
          }
        } catch {
          // the next Sentinel
        } finally {
          client.disconnect();
        }
      }
    } finally {
      this.polling = false;
    }
  }

  private follow(reported: PrimaryAddress | undefined): void {
    const decision = primaryReported(this.primary, reported);
    this.primary = decision.primary;
    const old = decision.cutConnectionsTo;
    if (!old || !this.primary) return;
    let cut = 0;
    for (const f of this.open) {
      if (!same(f.to, this.primary)) {
        cut++;
        f.client.destroy();
        f.upstream.destroy();
      }
    }
    this.options.onSwitch?.(this.primary, cut);
  }

  private accept(client: net.Socket): void {
    const to = this.primary;
    if (!to || !admitConnection(this.open.size, this.options.maxConnections ?? 512, to)) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect({ host: to.host, port: to.port });
    const forwarded: Forwarded = { client, upstream, to };
    this.open.add(forwarded);
    const end = () => {
      if (!this.open.delete(forwarded)) return;
      client.destroy();
      upstream.destroy();
    };
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async stop(): Promise<void> {
    if (this.poller) clearInterval(this.poller);
    for (const w of this.watchers) w.disconnect();
    this.watchers.length = 0;
    for (const f of this.open) {
      f.client.destroy();
      f.upstream.destroy();
    }
    this.open.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
