import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type http from "node:http";

export const newControlToken = () => randomBytes(32).toString("base64url");

/** A Host (or Origin host) that names loopback: 127.0.0.0/8, localhost or [::1]. */
const loopbackHost = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])$/i;

export const sameToken = (given: string | undefined, token: string): boolean => {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
};

/**
 * What a browser may load without the token: the dashboard's shell, its script and its style. They
 * hold no state of the stack; the script then sends the token it read from the URL's fragment, as
 * a header, with every request for data. A report opened from the page carries a one-time ticket
 * instead, which the dashboard checks (a new tab cannot send a header).
 */
const publicRoutes = new Set([
  "GET /dashboard",
  "GET /dashboard/",
  "GET /dashboard/app.js",
  "GET /dashboard/app.css",
]);
const ticketRoute = /^GET \/dashboard\/reports\/[\w.-]+\.html$/;

export type AccessDecision = { allowed: true } | { allowed: false; status: 401 | 403; reason: string };

/**
 * Who may use the control plane (and the dashboard it serves): only the user who can read the
 * state file. Every route goes through `decide`, before anything is read or changed.
 * - Host must be loopback with the server's port: a DNS-rebinding page sends its own name.
 * - Origin, when a browser sends one, must be the server's own: a cross-site page cannot POST.
 * - The token from the state file, as `Authorization: Bearer <token>` only: the CLI and drills
 *   send it, and so does the dashboard's script. No cookie: a cookie is scoped by host, not port,
 *   so a browser would send it to every server on 127.0.0.1 (the load balancer, a dev server).
 */
export class ControlPlaneAccess {
  constructor(
    readonly token: string,
    private readonly port: () => number,
  ) {}

  decide(req: http.IncomingMessage): AccessDecision {
    const host = req.headers.host ?? "";
    const hostMatch = /^(.*):(\d+)$/.exec(host);
    if (!hostMatch || !loopbackHost.test(hostMatch[1] ?? "") || Number(hostMatch[2]) !== this.port()) {
      return { allowed: false, status: 403, reason: `Host "${host}" is not this loopback server` };
    }
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${host}`) {
      return { allowed: false, status: 403, reason: `Origin "${origin}" is not this server` };
    }
    if (sameToken(/^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1], this.token)) {
      return { allowed: true };
    }
    const url = new URL(req.url ?? "/", "http://control");
    const route = `${req.method} ${url.pathname}`;
    if (publicRoutes.has(route)) return { allowed: true };
    if (ticketRoute.test(route) && url.searchParams.has("ticket")) return { allowed: true };
    return {
      allowed: false,
      status: 401,
      reason: "missing or wrong token: the CLI reads it from the stack's state file",
    };
  }

  /** Decides, and answers a refusal itself; true when the request may proceed. */
  admit(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const decision = this.decide(req);
    if (decision.allowed) return true;
    res.writeHead(decision.status, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        error: decision.status === 401 ? "unauthorized" : "forbidden",
        reason: decision.reason,
      }),
    );
    return false;
  }
}

/**
 * The policy of every control-plane answer: scripts and styles from this server only (an inline
 * one only by its hash, as a drill report has), no framing, no Referer, no MIME sniffing.
 */
export function contentSecurityPolicy(inline: { scripts?: string[]; styles?: string[] } = {}): string {
  const hashes = (blocks: string[] = []) =>
    blocks.map((b) => ` 'sha256-${createHash("sha256").update(b).digest("base64")}'`).join("");
  return [
    "default-src 'none'",
    `script-src 'self'${hashes(inline.scripts)}`,
    `style-src 'self'${hashes(inline.styles)}`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/**
 * Every answer carries these, refusals included. `no-store`: nothing a control plane answers (the
 * stack's state, the token-gated data) is kept in a browser's or a proxy's cache.
 */
export function setSecurityHeaders(res: http.ServerResponse): void {
  res.setHeader("content-security-policy", contentSecurityPolicy());
  res.setHeader("x-frame-options", "DENY");
  res.setHeader("referrer-policy", "no-referrer");
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("cache-control", "no-store");
}

/**
 * The token cookies earlier versions set (`stayup_token`, then `stayup_token_<port>`): a browser
 * that still holds one sends it to every server on the host. Any such cookie a request carries is
 * cleared (same name and path, `Max-Age=0`); no answer ever sets one.
 */
const oldTokenCookie = /^stayup_token(_\d+)?$/;

export function clearOldTokenCookies(req: http.IncomingMessage, res: http.ServerResponse): void {
  const names = (req.headers.cookie ?? "")
    .split(";")
    .map((pair) => pair.split("=")[0]?.trim() ?? "")
    .filter((name) => oldTokenCookie.test(name));
  if (names.length === 0) return;
  res.setHeader(
    "set-cookie",
    [...new Set(names)].map((name) => `${name}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict`),
  );
}
