/**
 * The request's headers for the target, as an ALB forwards them: hop-by-hop ones dropped, Host as
 * the client sent it (the listener's address if it sent none), X-Forwarded-For with the client
 * appended, X-Forwarded-Proto and X-Forwarded-Port of the listener (the client's own claims dropped).
 */
import type { ClientRequest } from "./http1-listener.ts";
import {
  CONNECTION,
  CONTENT_LENGTH,
  HOST,
  OTHER,
  TRANSFER_ENCODING,
  X_FORWARDED_FOR,
  X_STAYUP_DRAINING,
  headerRole,
  nominatedFields,
  withoutNominated,
} from "./header-names.ts";

/**
 * Read from the flat `rawHeaders`, duplicates as the client sent them. `hasBody`: the request
 * declared a body (Content-Length or Transfer-Encoding); `refusal`: why it is answered 400 instead.
 * Hop-by-hop fields are dropped (RFC 9110 §7.6.1): Connection and every field it names,
 * Keep-Alive, Proxy-Connection, Proxy-Authorization, TE, Trailer, Upgrade, and Transfer-Encoding
 * (the body is framed anew, with its length).
 */
export function forwardedHeaders(
  req: ClientRequest,
  listenerHost: string,
): { headers: string[]; hasBody: boolean; refusal?: string } {
  const raw = req.rawHeaders;
  const headers: string[] = [];
  let hasBody = false;
  let hasHost = false;
  let forwardedFor: string | undefined;
  let connection: string | undefined;
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
        // Two Host fields: which one is meant is ambiguous (RFC 9112 §3.2: 400).
        if (hasHost) return { headers, hasBody, refusal: "more than one Host header field" };
        hasHost = true;
        headers.push(name, value);
        break;
      case TRANSFER_ENCODING:
        hasBody = true;
        break;
      case X_FORWARDED_FOR:
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        break;
      case CONNECTION:
        connection = connection === undefined ? value : `${connection}, ${value}`;
        break;
      default: // hop-by-hop, and the client's X-Forwarded-Proto and -Port
        break;
    }
  }
  const nominated = nominatedFields(connection);
  const forwarded = nominated ? withoutNominated(headers, nominated) : headers;
  if (!hasHost) forwarded.push("host", `${listenerHost}:${req.listenerPort}`);
  const client = req.remoteAddress;
  forwarded.push(
    "x-forwarded-for",
    forwardedFor ? `${forwardedFor}, ${client}` : client,
    "x-forwarded-proto",
    req.listenerProtocol,
    "x-forwarded-port",
    req.listenerPort,
  );
  return { headers: forwarded, hasBody };
}
