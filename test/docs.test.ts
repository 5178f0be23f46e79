import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { cliReference, cliReferenceFile } from "../src/cli/docs.ts";
import { buildProgram } from "../src/cli/main.ts";
import { repoRoot } from "./helpers.ts";

const markdownFiles = [
  "README.md",
  ...readdirSync(path.join(repoRoot, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens. */
function headingAnchors(file: string): Set<string> {
  const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
  const anchors = new Set<string>();
  for (const [, heading] of text.matchAll(/^#{1,6}\s+(.*)$/gm)) {
    const slug = heading!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    let anchor = slug;
    for (let n = 1; anchors.has(anchor); n++) anchor = `${slug}-${n}`;
    anchors.add(anchor);
  }
  return anchors;
}

describe("documentation: generated pages current, links that lead somewhere", () => {
  it("docs/cli.md is every command's --help (npm run docs rewrites it)", async () => {
    const written = readFileSync(cliReferenceFile, "utf8");
    assert.equal(written, cliReference(await buildProgram()), "docs/cli.md is stale: run npm run docs");
    assert.match(written, /## stayup init\n/);
    assert.match(written, /## stayup drill kill-instance\n/);
  });

  it("every relative link in README.md and docs/ names a file that exists, and a heading of it", () => {
    const broken: string[] = [];
    for (const file of markdownFiles) {
      const text = readFileSync(path.join(repoRoot, file), "utf8").replace(/```[\s\S]*?```/g, "");
      for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const [target, anchor] = match[1]!.split("#") as [string, string | undefined];
        if (/^[a-z]+:/i.test(match[1]!)) continue;
        const linked =
          target === "" ? path.join(repoRoot, file) : path.resolve(repoRoot, path.dirname(file), target);
        if (!existsSync(linked)) broken.push(`${file} → ${target}`);
        else if (anchor && linked.endsWith(".md") && !headingAnchors(linked).has(anchor))
          broken.push(`${file} → ${match[1]} (no such heading)`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it("docs/README.md indexes every page of docs/", () => {
    const index = readFileSync(path.join(repoRoot, "docs/README.md"), "utf8");
    for (const file of markdownFiles.filter((f) => f.startsWith("docs/") && f !== "docs/README.md")) {
      assert.ok(index.includes(`](${path.basename(file)})`), `docs/README.md does not link ${file}`);
    }
  });

  it("docs/local-runtime.md's Events section names every event type the bus carries", () => {
    const source = ["src/local/events/bus.ts", "src/local/controller-guard.ts"]
      .map((f) => readFileSync(path.join(repoRoot, f), "utf8"))
      .join("\n");
    const types = [...new Set([...source.matchAll(/\btype: "([a-z-]+\.[a-z.-]+)"/g)].map((m) => m[1]!))];
    assert.ok(types.includes("redis.zone-impaired") && types.includes("controller.error"), types.join(", "));
    const page = readFileSync(path.join(repoRoot, "docs/local-runtime.md"), "utf8");
    const section = page.slice(page.indexOf("\n## Events\n"));
    assert.ok(section.length < page.length, "docs/local-runtime.md has an Events section");
    assert.deepEqual(
      types.filter((t) => !section.includes(`\`${t}\``)),
      [],
      "event types missing from docs/local-runtime.md's Events section",
    );
  });

  it("the README's quick start is the demo's two commands, and links the docs", () => {
    const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");
    assert.ok(
      readme.includes(
        "npm ci && npm start      # brings the local stack up on http://127.0.0.1:8080 (Ctrl-C stops it)\n" +
          "npm test                 # runs the tests (real redis-server, real processes, loopback only)\n",
      ),
      "the quick start's two commands are unchanged",
    );
    assert.match(readme, /npx stayup init/);
    assert.match(readme, /\(docs\/README\.md\)/);
  });
});
