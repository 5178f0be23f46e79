/**
 * `stayup diagram` output is Mermaid: parsed and rendered by the mermaid bundle in a real Chromium
 * (mermaid's flowchart parser needs a DOM, which Node does not have).
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { localDiagram } from "../src/aws/diagram.ts";
import { awsDiagramOf } from "../src/cli/commands/diagram/index.ts";
import { description, inHostedZone } from "./aws-helpers.ts";
import { launchChromium } from "./browser.ts";
import { configPath, runCli } from "./helpers.ts";

const mermaidBundle = createRequire(import.meta.url).resolve("mermaid/dist/mermaid.min.js");

describe("stayup diagram (Mermaid, checked in Chromium)", { timeout: 300_000 }, () => {
  let browser: Browser;
  let page: Page;
  before(async () => {
    browser = await launchChromium();
    page = await browser.newPage();
    await page.setContent("<!doctype html><html><body></body></html>");
    await page.addScriptTag({ path: mermaidBundle });
    await page.evaluate(() =>
      (window as unknown as { mermaid: { initialize(o: object): void } }).mermaid.initialize({
        startOnLoad: false,
      }),
    );
  });
  after(async () => {
    await browser?.close();
  });

  /** Parses and renders `text`; the SVG's text, or the parser's error. */
  const render = (text: string) =>
    page.evaluate(async (source) => {
      const mermaid = (
        window as unknown as {
          mermaid: {
            parse(t: string): Promise<{ diagramType: string }>;
            render(id: string, t: string): Promise<{ svg: string }>;
          };
        }
      ).mermaid;
      try {
        const parsed = await mermaid.parse(source);
        const { svg } = await mermaid.render(`d${Math.random().toString(36).slice(2)}`, source);
        const holder = document.createElement("div");
        holder.innerHTML = svg;
        return { type: parsed.diagramType, text: holder.textContent ?? "", error: "" };
      } catch (error) {
        return { type: "", text: "", error: String(error) };
      }
    }, text);

  it("the checker rejects what is not Mermaid", async () => {
    const result = await render("flowchart TB\n  a[unclosed --> b\n");
    assert.notEqual(result.error, "");
  });

  it("AWS, dev: regions, tiers, NAT, ALB, groups and Redis, drawn from the synthesized stacks", async () => {
    const text = awsDiagramOf(await description("dev"));
    const result = await render(text);
    assert.equal(result.error, "");
    assert.match(result.type, /flowchart/);
    for (const label of [
      "eu-west-3 (primary region)",
      "us-east-1 (secondary region, pilot-light)",
      "public subnets: eu-west-3a, eu-west-3b, eu-west-3c",
      "NAT gateway",
      "Application Load Balancer (internet-facing)",
      "Auto Scaling group stayup-dev-web: min 2, desired 2, max 4",
      "ElastiCache Redis: 3 × cache.t4g.micro, Multi-AZ",
    ])
      assert.ok(result.text.includes(label), `${label} in the rendered diagram`);
    // dev runs one NAT gateway per region
    assert.equal(text.match(/\["NAT gateway"\]/g)?.length, 2);
  });

  it("AWS, prod with Route 53 failover: a NAT per AZ, the failover records, health checks, alarms and Lambdas", async () => {
    const text = awsDiagramOf(await description("prod", (d) => inHostedZone(d)));
    const result = await render(text);
    assert.equal(result.error, "");
    assert.equal(text.match(/\["NAT gateway"\]/g)?.length, 6);
    for (const label of [
      "us-east-1 (secondary region, pilot-light; Route 53 failover)",
      "DNS record app.example.com (PRIMARY)",
      "DNS record app.example.com (SECONDARY)",
      "Route 53 health check primary.app.example.com/health",
      "CloudWatch alarm stayup-prod-primary-unhealthy",
      "Lambda stayup-prod-failover",
    ])
      assert.ok(result.text.includes(label), `${label} in the rendered diagram`);
  });

  it("AWS, single instance: no load balancer, an Elastic IP", async () => {
    const text = awsDiagramOf(await description("dev", (d) => void (d.topology = "single-instance")));
    const result = await render(text);
    assert.equal(result.error, "");
    assert.ok(!result.text.includes("Application Load Balancer"));
    assert.ok(result.text.includes("Elastic IP"));
  });

  it("local runtime: both regions, their load balancers, the instances per AZ, Redis and DNS", async () => {
    const result = await render(localDiagram(await description("prod")));
    assert.equal(result.error, "");
    for (const label of [
      "primary eu-west-3 (127.0.0.1)",
      "load balancer 127.0.0.1:8080",
      "instance group: 3 desired",
      "secondary us-east-1 (127.0.0.2)",
      "Redis in each region: a node per AZ (3: a primary and replicas), a regional Sentinel",
      "DNS server udp://127.0.0.1:5353",
    ])
      assert.ok(result.text.includes(label), `${label} in the rendered diagram`);
  });

  it("`stayup diagram --target local` prints a flowchart", async () => {
    const result = await runCli(["diagram", "--config", configPath, "--target", "local"], {
      timeoutMs: 60_000,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^flowchart TB\n/);
    assert.equal((await render(result.stdout)).error, "");
  });
});
