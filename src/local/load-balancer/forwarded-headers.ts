/**
 * The request's headers for the target, as an ALB forwards them: hop-by-hop ones dropped, Host as
 * the client sent it (the listener's address if it sent none), X-Forwarded-For with the client
 * appended, X-Forwarded-Proto and X-Forwarded-Port of the listener (the client's own claims dropped).
 */
import type { ClientRequest } from "./http1-listener.ts";
import {
  CONTENT_LENGTH,
  HOST,
  OTHER,
  TRANSFER_ENCODING,
  X_FORWARDED_FOR,
  X_STAYUP_DRAINING,
  headerRole,
} from "./header-names.ts";

/**
 * Read from the flat `rawHeaders`, duplicates as the client sent them. `hasBody`: the request
 * declared a body (Content-Length or Transfer-Encoding).
 */
export function forwardedHeaders(
  req: ClientRequest,
  listenerHost: string,
): { headers: string[]; hasBody: boolean } {
  const raw = req.rawHeaders;
  const headers: string[] = [];
  let hasBody = false;
  let hasHost = false;
  let forwardedFor: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    switch (headerRole(name)) {
      case OTHER:
      case X_STAYUP_DRAINING:
        headers.push(name, value);
        break;
      case CONTENT_LENGTH:
        hasBody = true;
        headers.push(name, value);
        break;
      case HOST:
        if (hasHost) break; // one Host (RFC 9112 §3.2)
        hasHost = true;
        headers.push(name, value);
        break;
      case TRANSFER_ENCODING:
        hasBody = true;
        break;
      case X_FORWARDED_FOR:
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        break;
      default: // hop-by-hop, and the client's X-Forwarded-Proto and -Port
        break;
    }
  }
  if (!hasHost) headers.push("host", `${listenerHost}:${req.listenerPort}`);
  const client = req.remoteAddress;
  headers.push(
    "x-forwarded-for",
    forwardedFor ? `${forwardedFor}, ${client}` : client,
    "x-forwarded-proto",
    req.listenerProtocol,
    "x-forwarded-port",
    req.listenerPort,
  );
  return { headers, hasBody };
}
