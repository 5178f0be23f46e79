import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { repoRoot } from "./helpers.ts";
import { type Project, projectWithStayup } from "./packaged.ts";

/** A user's service that knows nothing of stayup: it reads PORT and HOST. */
const server = `const http = require("node:http");
http.createServer((req, res) => res.end("ok")).listen(Number(process.env.PORT), process.env.HOST);
`;

describe("stayup as a dev dependency of someone else's project (npm pack, npm install --save-dev)", () => {
  let project: Project;
  before(async () => {
    project = await projectWithStayup({ "server.js": server });
  });

  it("npx stayup --version is the packed version", async () => {
    const version = (
      JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string }
    ).version;
    const result = await project.stayup(["--version"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), version);
    const pkg = JSON.parse(readFileSync(path.join(project.dir, "package.json"), "utf8")) as {
      devDependencies?: Record<string, string>;
    };
    assert.ok(pkg.devDependencies?.stayup, "installed as a dev dependency");
  });

  it("init writes the project's description from its start script, and will not overwrite it", async () => {
    const result = await project.stayup(["init", "--health-path", "/health"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /wrote stayup\.config\.ts/);
    assert.match(
      result.stdout,
      /start\s+npm start\s+\(from package\.json's start script \(node server\.js\)\)/,
    );
    assert.match(result.stdout, /check:/);
    const file = path.join(project.dir, "stayup.config.ts");
    const text = readFileSync(file, "utf8");
    assert.match(text, /from "stayup"/);
    assert.match(text, /path: "\/health"/);

    const again = await project.stayup(["init"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists; nothing was written/);
    assert.match(again.stderr, /--force/);
    assert.equal(readFileSync(file, "utf8"), text, "the file is untouched");
  });

  it('synth renders it there: `import { defineStack } from "stayup"` resolves in the project', async () => {
    const result = await project.stayup(["synth", "--topology", "single-instance", "--env", "dev"], {
      timeoutMs: 240_000,
    });
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const out = path.join(project.dir, "cdk.out", "dev");
    assert.ok(existsSync(out), "the assembly is written in the project's folder");
    const templates = readdirSync(out).filter((f) => f.endsWith(".template.json"));
    assert.ok(
      templates.some((t) => t.startsWith("my-service-dev-single-instance")),
      `templates named after the project: ${templates.join(", ")}`,
    );
  });

  it("a description with a mistake is reported from the project's folder", async () => {
    const bad = path.join(project.dir, "bad.config.ts");
    writeFileSync(
      bad,
      'import { defineStack } from "stayup";\nexport default defineStack({ name: "X" } as never);\n',
    );
    const result = await project.stayup(["synth", "--config", "bad.config.ts"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /bad\.config\.ts is not a valid stack description/);
    assert.match(result.stderr, /✗ name: must be 2-21 lower-case letters/);
  });
});
