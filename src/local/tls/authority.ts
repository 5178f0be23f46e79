import { webcrypto } from "node:crypto";
import { chmodSync, existsSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  GeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  id_ce_nameConstraints,
  NameConstraints,
} from "@peculiar/asn1-x509";
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { ensurePrivateDir, writePrivateFileAtomic } from "../../shared/private-file.ts";

/**
 * The local certificate authority stayup creates once under the state folder, and the server
 * certificates it signs for `dns.name`, so the local load balancer answers HTTPS as the ALB does
 * with its ACM certificate. X.509 by @peculiar/x509 over Node's WebCrypto (ECDSA P-256). Limited to
 * loopback (name constraints) and short-lived: trusting it exposes nothing beyond this machine.
 */

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export interface LocalAuthority {
  /** PEM of the authority's certificate: what a client trusts (`curl --cacert`). */
  certificatePem: string;
  certificateFile: string;
  /** Readable by the user only (0600), as the certificate. */
  privateKeyFile: string;
  /** Whether this call created it (false: the one from an earlier run). */
  created: boolean;
}

const toPem = (der: ArrayBuffer, label: string) =>
  `-----BEGIN ${label}-----\n${
    Buffer.from(der)
      .toString("base64")
      .match(/.{1,64}/g)
      ?.join("\n") ?? ""
  }\n-----END ${label}-----\n`;

const fromPem = (pem: string) =>
  Buffer.from(pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");

const serial = () =>
  Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString("hex")
    .replace(/^[89a-f]/, "1");

/** Where the authority lives under a state folder. */
export const authorityFiles = (stateDir: string) => ({
  dir: path.join(stateDir, "tls"),
  certificateFile: path.join(stateDir, "tls", "local-ca.crt"),
  privateKeyFile: path.join(stateDir, "tls", "local-ca.key"),
});

/**
 * Validity of the authority, and of the server certificates it signs. Short, so a copied key or
 * certificate is worth little for long (a month: long enough that a browser's trust, added by
 * hand, is not asked for every few days; a week for a server certificate, issued afresh on every
 * start anyway). The authority is renewed on `up` once less than a third of its validity remains
 * (10 days), more than a server certificate's validity: no server certificate outlives its authority.
 */
export const authorityValidityDays = 30;
export const serverCertificateValidityDays = 7;
export const authorityRenewalMarginDays = authorityValidityDays / 3;

/** Loopback only: what the authority may sign for, besides the stack's own DNS names. */
export const permittedAddresses = ["127.0.0.0/8", "::1/128"] as const;
export const permittedLoopbackNames = ["localhost"] as const;

/**
 * RFC 5280 §4.2.1.10 name constraints, critical: a client that trusts the authority trusts it for
 * these names and addresses only, so even its stolen key cannot vouch for a real site.
 */
function nameConstraints(dnsNames: readonly string[]): x509.Extension {
  const subtrees = [
    ...[...permittedLoopbackNames, ...dnsNames].map((dNSName) => new GeneralName({ dNSName })),
    ...permittedAddresses.map((iPAddress) => new GeneralName({ iPAddress })),
  ].map((base) => new GeneralSubtree({ base }));
  const value = AsnConvert.serialize(
    new NameConstraints({ permittedSubtrees: new GeneralSubtrees(subtrees) }),
  );
  return new x509.Extension(id_ce_nameConstraints, true, value);
}

/**
 * What an authority's name constraints permit: DNS names and IP ranges (as their encoded bytes, in
 * hex), and whether the extension is critical; undefined when it has none.
 */
function permittedBy(
  certificate: x509.X509Certificate,
): { critical: boolean; dnsNames: string[]; ipRanges: string[] } | undefined {
  const extension = certificate.getExtension(id_ce_nameConstraints);
  if (!extension) return undefined;
  const constraints = AsnConvert.parse(extension.value, NameConstraints);
  const bases = [...(constraints.permittedSubtrees ?? [])].map((s) => s.base);
  return {
    critical: extension.critical,
    dnsNames: bases.flatMap((b) => (b.dNSName ? [b.dNSName] : [])),
    ipRanges: bases.flatMap((b) =>
      b.iPAddress
        ? [Buffer.from(AsnConvert.serialize(new GeneralName({ iPAddress: b.iPAddress }))).toString("hex")]
        : [],
    ),
  };
}

/** The DNS names an authority's name constraints permit (none when it has no constraints). */
export const permittedDnsNames = (certificate: x509.X509Certificate): string[] =>
  permittedBy(certificate)?.dnsNames ?? [];

/** The encoded loopback ranges an authority must be limited to (compared with permittedBy's). */
const loopbackRanges = permittedAddresses.map((iPAddress) =>
  Buffer.from(AsnConvert.serialize(new GeneralName({ iPAddress }))).toString("hex"),
);

/** Why an existing authority must be replaced, or undefined when it can serve on. */
function replacementReason(
  certificate: x509.X509Certificate,
  dnsNames: readonly string[],
  now: number,
): string | undefined {
  const remainingMs = certificate.notAfter.getTime() - now;
  if (remainingMs < authorityRenewalMarginDays * DAY_MS) return "it expires within the renewal margin";
  if (certificate.notAfter.getTime() - certificate.notBefore.getTime() > (authorityValidityDays + 1) * DAY_MS)
    return "it is valid longer than stayup's authorities are (an earlier version's)";
  const permitted = permittedBy(certificate);
  if (!permitted) return "it has no name constraints (an earlier version's)";
  if (!permitted.critical) return "its name constraints are not marked critical";
  const missing = [...permittedLoopbackNames, ...dnsNames].filter((n) => !permitted.dnsNames.includes(n));
  if (missing.length > 0) return `its name constraints do not cover ${missing.join(", ")}`;
  const wanted = [...permittedLoopbackNames, ...dnsNames];
  const beyond = permitted.dnsNames.filter((n) => !wanted.includes(n));
  if (beyond.length > 0)
    return `its name constraints permit names the stack no longer has (${beyond.join(", ")})`;
  if (permitted.ipRanges.sort().join() !== [...loopbackRanges].sort().join())
    return "its name constraints do not limit addresses to loopback";
  return undefined;
}

export interface AuthorityOptions {
  /** The stack's DNS names (dns.name) the authority may sign for, besides localhost and loopback. */
  dnsNames?: readonly string[];
  /** The current time (tests: a renewal that is due). */
  now?: number;
}

/**
 * The state folder's authority: reused while it is valid for more than the renewal margin and
 * permits `dnsNames`; otherwise (first use, due for renewal, names changed, or an authority of an
 * earlier version without constraints) created afresh, valid `authorityValidityDays`.
 */
export async function ensureLocalAuthority(
  stateDir: string,
  options: AuthorityOptions = {},
): Promise<LocalAuthority & { renewedBecause?: string }> {
  const files = authorityFiles(stateDir);
  const dnsNames = options.dnsNames ?? [];
  const now = options.now ?? Date.now();
  let renewedBecause: string | undefined;
  if (existsSync(files.certificateFile) && existsSync(files.privateKeyFile)) {
    const certificatePem = readFileSync(files.certificateFile, "utf8");
    try {
      renewedBecause = replacementReason(new x509.X509Certificate(certificatePem), dnsNames, now);
    } catch (error) {
      renewedBecause = `it cannot be read (${(error as Error).message})`;
    }
    if (!renewedBecause) {
      // Tightened again in case something loosened them: the key signs certificates clients trust.
      chmodSync(files.privateKeyFile, 0o600);
      chmodSync(files.certificateFile, 0o600);
      return {
        certificatePem,
        certificateFile: files.certificateFile,
        privateKeyFile: files.privateKeyFile,
        created: false,
      };
    }
  }
  ensurePrivateDir(files.dir);
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: "CN=stayup local certificate authority",
    // An hour back: a client whose clock is a little behind still accepts it.
    notBefore: new Date(now - HOUR_MS),
    notAfter: new Date(now + authorityValidityDays * DAY_MS),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      nameConstraints(dnsNames),
    ],
  });
  const keyPem = toPem(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY");
  writePrivateFileAtomic(files.privateKeyFile, keyPem);
  const certificatePem = certificate.toString("pem");
  writePrivateFileAtomic(files.certificateFile, `${certificatePem}\n`);
  return {
    certificatePem,
    certificateFile: files.certificateFile,
    privateKeyFile: files.privateKeyFile,
    created: true,
    ...(renewedBecause ? { renewedBecause } : {}),
  };
}

/**
 * A server certificate for `names` (DNS names and IP addresses), signed by the authority; valid
 * `serverCertificateValidityDays` and issued afresh on every start, so it never needs renewing by hand.
 */
export async function issueServerCertificate(
  authority: LocalAuthority,
  names: string[],
): Promise<{ certificatePem: string; privateKeyPem: string }> {
  const caCertificate = new x509.X509Certificate(authority.certificatePem);
  const caKey = await webcrypto.subtle.importKey(
    "pkcs8",
    fromPem(readFileSync(authority.privateKeyFile, "utf8")),
    algorithm,
    false,
    ["sign"],
  );
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const isIp = (n: string) => net.isIP(n) !== 0;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names[0]}`,
    issuer: caCertificate.subject,
    notBefore: new Date(now - HOUR_MS),
    notAfter: new Date(now + serverCertificateValidityDays * DAY_MS),
    signingAlgorithm: algorithm,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(
        names.map((n) => (isIp(n) ? { type: "ip" as const, value: n } : { type: "dns" as const, value: n })),
      ),
      await x509.AuthorityKeyIdentifierExtension.create(caCertificate, false),
    ],
  });
  return {
    certificatePem: certificate.toString("pem"),
    privateKeyPem: toPem(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY"),
  };
}
