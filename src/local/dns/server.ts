import dgram from "node:dgram";
import dnsPacket from "dns-packet";
import type { ResolvedStack } from "../../stack/index.ts";
import { PortUnavailableError } from "../../shared/net.ts";
import { ControllerGuard } from "../controller-guard.ts";
import type { EventPublisher } from "../events/bus.ts";

type DnsSettings = NonNullable<ResolvedStack["dns"]>;

const NXDOMAIN = 3;

/**
 * A DNS server on loopback (UDP) that answers the application's name with failover routing, like
 * a Route 53 failover record pair: the address `answer()` gives (the primary region's while its
 * health check passes, the secondary's otherwise), with the configured TTL.
 */
export class FailoverDnsServer {
  private socket?: dgram.Socket;
  private answer: () => string | undefined = () => undefined;
  port = 0;
  /** A query it fails to answer, or a socket error, is an event; the next query is answered as usual. */
  private readonly guard: ControllerGuard;

  constructor(
    private readonly settings: DnsSettings,
    private readonly events: EventPublisher,
  ) {
    this.guard = new ControllerGuard({ controller: "dns", events });
  }

  private get name(): string {
    return this.settings.name.toLowerCase();
  }

  /** Fails clearly, before anything starts, if the UDP port is taken. */
  async preflight(portOverride?: number): Promise<void> {
    const port = portOverride ?? this.settings.local.port;
    if (port === 0) return;
    const probe = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      probe.once("error", (error: NodeJS.ErrnoException) => {
        probe.close();
        reject(
          new PortUnavailableError(
            `DNS server: UDP port ${port} on ${this.settings.local.host} is ${error.code === "EADDRINUSE" ? "already in use by another process" : `unusable (${error.message})`}`,
            "pass --dns-port 0 (a free port), or change dns.local.port in stayup.config.ts, or stop what holds it",
          ),
        );
      });
      probe.bind({ address: this.settings.local.host, port, exclusive: true }, () =>
        probe.close(() => resolve()),
      );
    });
  }

  listen(portOverride: number | undefined, answer: () => string | undefined): Promise<void> {
    this.answer = answer;
    const socket = dgram.createSocket("udp4");
    this.socket = socket;
    socket.on(
      "message",
      this.guard.wrap(
        (message: Buffer, remote: dgram.RemoteInfo) => this.respond(message, remote),
        "the client's retry (or the next query) is answered as usual",
      ),
    );
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(
        { address: this.settings.local.host, port: portOverride ?? this.settings.local.port },
        () => {
          this.port = socket.address().port;
          // Listening: a later socket error is the server's failure, not the start's.
          socket.off("error", reject);
          socket.on(
            "error",
            this.guard.wrap((error: Error) => {
              throw error;
            }, "the socket keeps answering the next queries"),
          );
          this.events.publish({
            type: "dns.listening",
            server: `${this.settings.local.host}:${this.port}`,
            name: this.name,
          });
          resolve();
        },
      );
    });
  }

  private respond(message: Buffer, remote: dgram.RemoteInfo): void {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return; // not DNS: nothing to answer
    }
    const questions = query.questions ?? [];
    const ours = questions.filter((q) => q.name.toLowerCase().replace(/\.$/, "") === this.name);
    const address = this.answer();
    const answers: dnsPacket.Answer[] =
      address === undefined
        ? []
        : ours
            .filter((q) => q.type === "A")
            .map((q) => ({
              name: q.name,
              type: "A",
              class: "IN",
              ttl: this.settings.ttlSeconds,
              data: address,
            }));
    const response = dnsPacket.encode({
      id: query.id,
      type: "response",
      // Authoritative; NXDOMAIN for any name but ours (AAAA for ours: no data, no error).
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (ours.length === 0 ? NXDOMAIN : 0),
      questions,
      answers,
    });
    this.socket?.send(response, remote.port, remote.address);
  }

  describe(): { name: string; server: string; answer: string } {
    return {
      name: this.name,
      server: `${this.settings.local.host}:${this.port}`,
      answer: this.answer() ?? "none",
    };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.socket) return resolve();
      this.socket.close(() => resolve());
      this.socket = undefined;
    });
  }
}
