/**
 * The header names the balancer acts on, recognised without lowercasing every name of every
 * request and answer (this runs for each header on the hot path): only a name of the same length
 * as one of them is compared, case-insensitively (RFC 9110 §5.1).
 */

/** Forwarded as it is. */
export const OTHER = 0;
/**
 * Belongs to one hop and is never forwarded (RFC 9110 §7.6.1): TE, Upgrade, Trailer,
 * Proxy-Connection, Proxy-Authorization, Proxy-Authenticate, and Expect (the balancer answers
 * 100-continue itself); Connection, Keep-Alive and Transfer-Encoding have roles of their own.
 */
export const HOP_BY_HOP = 1;
export const CONTENT_LENGTH = 2;
/** Hop-by-hop too: the body is re-framed on each side. */
export const TRANSFER_ENCODING = 3;
export const HOST = 4;
export const X_FORWARDED_FOR = 5;
export const X_FORWARDED_PROTO = 6;
export const X_FORWARDED_PORT = 7;
/** On an answer: the target is shutting down and did not handle the request (web service). */
export const X_STAYUP_DRAINING = 8;
/** Hop-by-hop; the target says how long it keeps an idle connection. */
export const KEEP_ALIVE = 9;
/** Hop-by-hop, and every field it names is too (RFC 9110 §7.6.1). */
export const CONNECTION = 10;

export type HeaderRole = number;

const is = (name: string, lower: string) => name === lower || name.toLowerCase() === lower;

export function headerRole(name: string): HeaderRole {
  switch (name.length) {
    case 2:
      return is(name, "te") ? HOP_BY_HOP : OTHER;
    case 4:
      return is(name, "host") ? HOST : OTHER;
    case 6:
      return is(name, "expect") ? HOP_BY_HOP : OTHER;
    case 7:
      return is(name, "trailer") || is(name, "upgrade") ? HOP_BY_HOP : OTHER;
    case 10:
      if (is(name, "connection")) return CONNECTION;
      return is(name, "keep-alive") ? KEEP_ALIVE : OTHER;
    case 14:
      return is(name, "content-length") ? CONTENT_LENGTH : OTHER;
    case 15:
      return is(name, "x-forwarded-for") ? X_FORWARDED_FOR : OTHER;
    case 16:
      if (is(name, "proxy-connection")) return HOP_BY_HOP;
      return is(name, "x-forwarded-port") ? X_FORWARDED_PORT : OTHER;
    case 17:
      if (is(name, "transfer-encoding")) return TRANSFER_ENCODING;
      if (is(name, "x-forwarded-proto")) return X_FORWARDED_PROTO;
      return is(name, "x-stayup-draining") ? X_STAYUP_DRAINING : OTHER;
    case 18:
      return is(name, "proxy-authenticate") ? HOP_BY_HOP : OTHER;
    case 19:
      return is(name, "proxy-authorization") ? HOP_BY_HOP : OTHER;
    default:
      return OTHER;
  }
}

/** Connection options that name no field to remove (the balancer frames each hop itself). */
const PLAIN_OPTIONS = /^\s*(?:(?:keep-alive|close|upgrade)\s*(?:,\s*|$))*$/i;

/**
 * The lower-cased field names a `Connection` value nominates (RFC 9110 §7.6.1), or undefined when
 * it names none but its own options (`keep-alive`, `close`): the common case costs one test.
 */
export function nominatedFields(connection: string | undefined): Set<string> | undefined {
  if (connection === undefined || PLAIN_OPTIONS.test(connection)) return undefined;
  const names = new Set<string>();
  for (const token of connection.split(",")) {
    const name = token.trim().toLowerCase();
    if (name !== "" && name !== "keep-alive" && name !== "close") names.add(name);
  }
  return names.size > 0 ? names : undefined;
}

/**
 * `headers` (flat name/value list) without the fields `nominated` names; only fields the balancer
 * forwards as they are (role OTHER) go: the ones it sets itself (Host, X-Forwarded-*) stay.
 */
export function withoutNominated(headers: string[], nominated: Set<string>): string[] {
  const kept: string[] = [];
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i] as string;
    if (headerRole(name) === OTHER && nominated.has(name.toLowerCase())) continue;
    kept.push(name, headers[i + 1] as string);
  }
  return kept;
}
