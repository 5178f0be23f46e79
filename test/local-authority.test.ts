/**
 * The local certificate authority (src/local/tls/authority.ts) read back with @peculiar/x509: limited
 * to loopback names and addresses by critical name constraints, short-lived, renewed when due, its
 * files private; and a TLS client (OpenSSL through node:tls) refusing what the constraints exclude.
 */
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { statSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  GeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  id_ce_nameConstraints,
  NameConstraints,
} from "@peculiar/asn1-x509";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import {
  authorityFiles,
  authorityRenewalMarginDays,
  ensureLocalAuthority,
  issueServerCertificate,
} from "../src/local/tls/authority.ts";
import { writePrivateFileAtomic } from "../src/shared/private-file.ts";
import { tempDir } from "./helpers.ts";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const NAME = "app.stayup.test";
const DAY_MS = 86_400_000;
const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

const validityDays = (c: x509.X509Certificate) => (c.notAfter.getTime() - c.notBefore.getTime()) / DAY_MS;

function constraintsOf(c: x509.X509Certificate): { critical: boolean; dns: string[]; ips: string[] } {
  const extension = c.getExtension(id_ce_nameConstraints);
  assert.ok(extension, "the authority has a name constraints extension");
  const parsed = AsnConvert.parse(extension.value, NameConstraints);
  assert.equal(parsed.excludedSubtrees, undefined);
  const bases = [...(parsed.permittedSubtrees ?? [])].map((s) => s.base);
  return {
    critical: extension.critical,
    dns: bases.flatMap((b) => (b.dNSName ? [b.dNSName] : [])),
    ips: bases.flatMap((b) => (b.iPAddress ? [b.iPAddress] : [])),
  };
}

/** A server certificate for `name` signed with the authority's key directly, bypassing stayup's issuer. */
async function signDirectly(stateDir: string, name: string) {
  const files = authorityFiles(stateDir);
  const { readFileSync } = await import("node:fs");
  const der = Buffer.from(
    readFileSync(files.privateKeyFile, "utf8")
      .replace(/-----(BEGIN|END) [A-Z ]+-----/g, "")
      .replace(/\s+/g, ""),
    "base64",
  );
  const caKey = await webcrypto.subtle.importKey("pkcs8", der, algorithm, false, ["sign"]);
  const ca = new x509.X509Certificate(readFileSync(files.certificateFile, "utf8"));
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as CryptoKeyPair;
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: "01",
    subject: `CN=${name}`,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + DAY_MS),
    signingAlgorithm: algorithm,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: name }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)).toString("base64");
  return {
    certificatePem: leaf.toString("pem"),
    privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)?.join("\n")}\n-----END PRIVATE KEY-----\n`,
  };
}

describe("the local certificate authority", () => {
  const servers: https.Server[] = [];
  after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

  it("is limited to loopback by critical name constraints, valid 30 days; its server certificates 7", async () => {
    const stateDir = tempDir("stayup-ca-");
    const authority = await ensureLocalAuthority(stateDir, { dnsNames: [NAME] });
    const ca = new x509.X509Certificate(authority.certificatePem);
    assert.ok(validityDays(ca) <= 30.1, `the authority is valid ${validityDays(ca).toFixed(1)} days`);
    assert.ok(ca.notAfter.getTime() > Date.now() + 29 * DAY_MS);
    const constraints = constraintsOf(ca);
    assert.equal(constraints.critical, true, "name constraints are critical (RFC 5280 §4.2.1.10)");
    assert.deepEqual(constraints.dns.sort(), [NAME, "localhost"].sort());
    assert.deepEqual(constraints.ips.sort(), ["127.0.0.0/8", "::1/128"].sort());

    const server = new x509.X509Certificate(
      (await issueServerCertificate(authority, [NAME, "localhost", "127.0.0.1"])).certificatePem,
    );
    assert.ok(validityDays(server) <= 7.1, `the server certificate is valid ${validityDays(server)} days`);
    assert.ok(
      server.notAfter.getTime() < ca.notAfter.getTime() - (authorityRenewalMarginDays - 7) * DAY_MS + 1000,
      "a server certificate never outlives its authority",
    );
    assert.ok(await server.verify({ publicKey: ca.publicKey, signatureOnly: true }));
  });

  it("keeps its files private: folder 0700, key and certificate 0600", async () => {
    const stateDir = tempDir("stayup-ca-");
    const files = authorityFiles(stateDir);
    await ensureLocalAuthority(stateDir, { dnsNames: [NAME] });
    assert.equal(statSync(files.dir).mode & 0o777, 0o700);
    assert.equal(statSync(files.privateKeyFile).mode & 0o777, 0o600);
    assert.equal(statSync(files.certificateFile).mode & 0o777, 0o600);
  });

  it("is reused while valid, renewed once less than the margin remains or when the names change", async () => {
    const stateDir = tempDir("stayup-ca-");
    const first = await ensureLocalAuthority(stateDir, { dnsNames: [NAME] });
    const reused = await ensureLocalAuthority(stateDir, { dnsNames: [NAME], now: Date.now() + DAY_MS });
    assert.equal(reused.created, false);
    assert.equal(reused.certificatePem.trim(), first.certificatePem.trim());

    const dueAt = Date.now() + (30 - authorityRenewalMarginDays + 1) * DAY_MS;
    const renewed = await ensureLocalAuthority(stateDir, { dnsNames: [NAME], now: dueAt });
    assert.equal(renewed.created, true);
    assert.match(renewed.renewedBecause ?? "", /renewal margin/);
    const ca = new x509.X509Certificate(renewed.certificatePem);
    assert.ok(ca.notAfter.getTime() > dueAt + 29 * DAY_MS, "valid 30 days from the renewal");

    const otherName = await ensureLocalAuthority(stateDir, { dnsNames: ["other.stayup.test"], now: dueAt });
    assert.equal(otherName.created, true);
    assert.match(otherName.renewedBecause ?? "", /other\.stayup\.test/);
  });

  it("is renewed once less than a third of its validity remains, not before", async () => {
    assert.equal(authorityRenewalMarginDays, 10, "a third of 30 days");
    const stateDir = tempDir("stayup-ca-");
    const first = await ensureLocalAuthority(stateDir, { dnsNames: [NAME] });
    const ca = new x509.X509Certificate(first.certificatePem);
    const at = (remainingDays: number) => ca.notAfter.getTime() - remainingDays * DAY_MS;
    const early = await ensureLocalAuthority(stateDir, { dnsNames: [NAME], now: at(10.5) });
    assert.equal(early.created, false, "10.5 days left: kept");
    const due = await ensureLocalAuthority(stateDir, { dnsNames: [NAME], now: at(9.5) });
    assert.equal(due.created, true, "9.5 days left: renewed");
    const renewed = new x509.X509Certificate(due.certificatePem);
    assert.ok(renewed.notAfter.getTime() >= at(9.5) + 29 * DAY_MS, "the new one valid 30 days from then");
  });

  it("replaces an authority whose name constraints are not critical, or permit more than loopback", async () => {
    for (const [critical, ips, why] of [
      [false, ["127.0.0.0/8", "::1/128"], /not marked critical/],
      [true, ["127.0.0.0/8", "::1/128", "10.0.0.0/8"], /loopback/],
    ] as const) {
      const stateDir = tempDir("stayup-ca-");
      const files = authorityFiles(stateDir);
      const keys = (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as CryptoKeyPair;
      const subtrees = [
        ...["localhost", NAME].map((dNSName) => new GeneralName({ dNSName })),
        ...ips.map((iPAddress) => new GeneralName({ iPAddress })),
      ].map((base) => new GeneralSubtree({ base }));
      const loose = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: "01",
        name: "CN=stayup local certificate authority",
        notBefore: new Date(Date.now() - DAY_MS),
        notAfter: new Date(Date.now() + 29 * DAY_MS),
        signingAlgorithm: algorithm,
        keys,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.Extension(
            id_ce_nameConstraints,
            critical,
            AsnConvert.serialize(new NameConstraints({ permittedSubtrees: new GeneralSubtrees(subtrees) })),
          ),
        ],
      });
      const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)).toString(
        "base64",
      );
      writePrivateFileAtomic(
        files.privateKeyFile,
        `-----BEGIN PRIVATE KEY-----\n${pkcs8}\n-----END PRIVATE KEY-----\n`,
      );
      writePrivateFileAtomic(files.certificateFile, loose.toString("pem"));
      const replaced = await ensureLocalAuthority(stateDir, { dnsNames: [NAME] });
      assert.equal(replaced.created, true);
      assert.match(replaced.renewedBecause ?? "", why);
      const constraints = constraintsOf(new x509.X509Certificate(replaced.certificatePem));
      assert.equal(constraints.critical, true);
      assert.deepEqual(constraints.ips.sort(), ["127.0.0.0/8", "::1/128"].sort());
    }
  });

  it("a TLS client trusting it accepts a server certificate it issued, by name and by loopback address", async () => {
    const stateDir = tempDir("stayup-ca-");
    const authority = await ensureLocalAuthority(stateDir, { dnsNames: [NAME] });
    const certificate = await issueServerCertificate(authority, [NAME, "localhost", "127.0.0.1", "::1"]);
    const server = https.createServer(
      { cert: certificate.certificatePem, key: certificate.privateKeyPem },
      (_, res) => res.end("ok"),
    );
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const { port } = server.address() as AddressInfo;
    const get = (servername?: string) =>
      new Promise<string>((resolve, reject) => {
        // No servername: Node checks the address against the certificate's IP entries.
        const req = https.get(
          {
            host: "127.0.0.1",
            port,
            ca: authority.certificatePem,
            agent: false,
            ...(servername ? { servername } : {}),
          },
          (res) => {
            let body = "";
            res.on("data", (d: Buffer) => (body += d));
            res.on("end", () => resolve(body));
          },
        );
        req.on("error", reject);
      });
    assert.equal(await get(NAME), "ok");
    assert.equal(await get("localhost"), "ok");
    assert.equal(await get(), "ok", "by its address, 127.0.0.1");
    const leaf = new x509.X509Certificate(certificate.certificatePem);
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
    assert.deepEqual(
      san?.names.items.filter((n) => n.type === "ip").map((n) => n.value),
      ["127.0.0.1", "::1"],
      "::1 is an address, not a DNS name",
    );
  });

  it("replaces an earlier version's authority: ten years, no name constraints", async () => {
    const stateDir = tempDir("stayup-ca-");
    const files = authorityFiles(stateDir);
    const keys = (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as CryptoKeyPair;
    const old = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: "01",
      name: "CN=stayup local certificate authority",
      notBefore: new Date(Date.now() - DAY_MS),
      notAfter: new Date(Date.now() + 3650 * DAY_MS),
      signingAlgorithm: algorithm,
      keys,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)).toString("base64");
    writePrivateFileAtomic(
      files.privateKeyFile,
      `-----BEGIN PRIVATE KEY-----\n${pkcs8}\n-----END PRIVATE KEY-----\n`,
    );
    writePrivateFileAtomic(files.certificateFile, old.toString("pem"));
    const replaced = await ensureLocalAuthority(stateDir, { dnsNames: [NAME] });
    assert.equal(replaced.created, true);
    const ca = new x509.X509Certificate(replaced.certificatePem);
    assert.ok(validityDays(ca) <= 30.1);
    assert.deepEqual(constraintsOf(ca).dns.sort(), [NAME, "localhost"].sort());
  });

  it("a TLS client trusting it accepts the stack's name and refuses a name outside its constraints", async () => {
    const stateDir = tempDir("stayup-ca-");
    const authority = await ensureLocalAuthority(stateDir, { dnsNames: [NAME] });
    const serve = async (certificate: { certificatePem: string; privateKeyPem: string }) => {
      const server = https.createServer(
        { cert: certificate.certificatePem, key: certificate.privateKeyPem },
        (_, res) => res.end("ok"),
      );
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      return (server.address() as AddressInfo).port;
    };
    const get = (port: number, servername: string) =>
      new Promise<string>((resolve, reject) => {
        const req = https.get(
          {
            host: "127.0.0.1",
            port,
            servername,
            ca: authority.certificatePem,
            agent: false,
            headers: { host: servername },
          },
          (res) => {
            let body = "";
            res.on("data", (d: Buffer) => (body += d));
            res.on("end", () => resolve(body));
          },
        );
        req.on("error", reject);
      });
    // Same key, same authority: only the name differs, so the constraints are what decides.
    assert.equal(await get(await serve(await signDirectly(stateDir, NAME)), NAME), "ok");
    await assert.rejects(
      get(await serve(await signDirectly(stateDir, "www.example.com")), "www.example.com"),
      (error: NodeJS.ErrnoException) => {
        assert.match(`${error.code} ${error.message}`, /name constraint|PERMITTED_VIOLATION|permitted/i);
        return true;
      },
    );
  });
});
