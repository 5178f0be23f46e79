import { webcrypto } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

/**
 * The local certificate authority stayup creates once under the state folder, and the server
 * certificates it signs for `dns.name`, so the local load balancer answers HTTPS as the ALB does
 * with its ACM certificate. X.509 by @peculiar/x509 over Node's WebCrypto (ECDSA P-256).
 */

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;

export interface LocalAuthority {
  /** PEM of the authority's certificate: what a client trusts (`curl --cacert`). */
  certificatePem: string;
  certificateFile: string;
  /** Readable by the user only (0600). */
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

/** The state folder's authority, created on first use (valid 10 years) and reused afterwards. */
export async function ensureLocalAuthority(stateDir: string): Promise<LocalAuthority> {
  const files = authorityFiles(stateDir);
  if (existsSync(files.certificateFile) && existsSync(files.privateKeyFile)) {
    // Tightened again in case something loosened it: the key signs certificates clients trust.
    chmodSync(files.privateKeyFile, 0o600);
    return {
      certificatePem: readFileSync(files.certificateFile, "utf8"),
      certificateFile: files.certificateFile,
      privateKeyFile: files.privateKeyFile,
      created: false,
    };
  }
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: "CN=stayup local certificate authority",
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 3650 * DAY_MS),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = toPem(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY");
  writeFileSync(files.privateKeyFile, keyPem, { mode: 0o600 });
  chmodSync(files.privateKeyFile, 0o600);
  const certificatePem = certificate.toString("pem");
  writeFileSync(files.certificateFile, `${certificatePem}\n`, { mode: 0o644 });
  return {
    certificatePem,
    certificateFile: files.certificateFile,
    privateKeyFile: files.privateKeyFile,
    created: true,
  };
}

/**
 * A server certificate for `names` (DNS names and IP addresses), signed by the authority; valid 90
 * days and issued afresh on every start, so it never needs renewing by hand.
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
  const isIp = (n: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(n);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names[0]}`,
    issuer: caCertificate.subject,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 90 * DAY_MS),
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
