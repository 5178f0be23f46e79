import { randomBytes, timingSafeEqual } from "node:crypto";
import type http from "node:http";

/**
 * Name of the cookie a browser gets after opening a control-plane URL with `?token=`. Cookies are
 * per host, not per port, so it names the control plane's port: two stacks on 127.0.0.1 each keep
 * their own, and logging into one dashboard does not log the other out.
 */
export const tokenCookieName = (port: number) => `stayup_token_${port}`;

export const newControlToken = () => randomBytes(32).toString("base64url");

/** A Host (or Origin host) that names loopback: 127.0.0.0/8, localhost or [::1]. */
const loopbackHost = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])$/i;

const sameToken = (given: string | undefined, token: string): boolean => {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
};

const cookie = (req: http.IncomingMessage, name: string): string | undefined => {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return undefined;
};

export type AccessDecision =
  { allowed: true; setCookie?: string } | { allowed: false; status: 401 | 403; reason: string };

/**
 * Who may use the control plane (and the dashboard it serves): only the user who can read the
 * state file. Every route goes through `decide`, before anything is read or changed.
 * - Host must be loopback with the server's port: a DNS-rebinding page sends its own name.
 * - Origin, when a browser sends one, must be the server's own: a cross-site page cannot POST.
 * - The token from the state file: `Authorization: Bearer <token>` (CLI, drills), or the
 *   HttpOnly SameSite=Strict cookie a browser gets by opening a URL with `?token=<token>` once.
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
    const cookieName = tokenCookieName(this.port());
    if (sameToken(cookie(req, cookieName), this.token)) return { allowed: true };
    const queryToken = new URL(req.url ?? "/", "http://control").searchParams.get("token") ?? undefined;
    if (req.method === "GET" && sameToken(queryToken, this.token)) {
      return {
        allowed: true,
        setCookie: `${cookieName}=${this.token}; HttpOnly; SameSite=Strict; Path=/`,
      };
    }
    return {
      allowed: false,
      status: 401,
      reason: "missing or wrong token: the CLI reads it from the stack's state file",
    };
  }

  /** Decides, and answers a refusal itself; true when the request may proceed. */
  admit(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const decision = this.decide(req);
    if (decision.allowed) {
      if (decision.setCookie) res.setHeader("set-cookie", decision.setCookie);
      return true;
    }
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
