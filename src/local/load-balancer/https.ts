import type http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { StayupError } from "../../shared/errors.ts";

/**
 * HTTPS as a thin layer over the load balancer, as the ALB's HTTPS listener: a TLS server whose
 * requests go to the balancer's own request handler, and the 301 the HTTP listener answers instead.
 */

/** The HTTP listener's answer when HTTPS is on: 301 to the same host and path over HTTPS. */
export function redirectToHttps(httpsPort: () => number): http.RequestListener {
  return (req, res) => {
    const port = httpsPort() === 443 ? "" : `:${httpsPort()}`;
    const host = (req.headers.host ?? "localhost").replace(/:\d+$/, "");
    res.writeHead(301, { location: `https://${host}${port}${req.url ?? "/"}`, "content-length": "0" });
    res.end();
  };
}

export interface HttpsListenerOptions {
  host: string;
  port: number;
  certificatePem: string;
  privateKeyPem: string;
}

export class HttpsListener {
  private readonly server: https.Server;
  url = "";
  port = 0;

  constructor(
    handler: http.RequestListener,
    readonly options: HttpsListenerOptions,
  ) {
    this.server = https.createServer(
      { cert: options.certificatePem, key: options.privateKeyPem, minVersion: "TLSv1.2", keepAlive: true },
      handler,
    );
    this.server.keepAliveTimeout = 60_000;
  }

  listen(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once("error", (error: NodeJS.ErrnoException) =>
        reject(
          new StayupError(
            `HTTPS listener: cannot listen on ${this.options.host}:${this.options.port}: ${error.message}`,
            "change loadBalancer.local.httpsPort in stayup.config.ts to a free port",
          ),
        ),
      );
      this.server.listen({ host: this.options.host, port: this.options.port, exclusive: true }, () => {
        const address = this.server.address() as AddressInfo;
        this.port = address.port;
        this.url = `https://${address.address}:${address.port}`;
        resolve(this.url);
      });
    });
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    setTimeout(() => this.server.closeAllConnections(), 2000).unref();
    await closed;
  }
}
