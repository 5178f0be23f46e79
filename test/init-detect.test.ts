import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DEFAULT_HEALTH_PATH,
  DEFAULT_PORT,
  descriptionName,
  detectService,
  dockerCommand,
  dockerPorts,
} from "../src/cli/commands/init/detect.ts";
import { renderDescription } from "../src/cli/commands/init/template.ts";
import { StayupError } from "../src/shared/errors.ts";
import { validateStack } from "../src/stack/index.ts";

const pkg = (scripts: Record<string, string>, name = "my-app") => JSON.stringify({ name, scripts });

describe("stayup init: how the service starts", () => {
  it("package.json's start script → npm start, named after the package", () => {
    const s = detectService({ folderName: "x", packageJson: pkg({ start: "node server.js" }) });
    assert.equal(s.command, "npm start");
    assert.match(s.commandFrom, /package\.json's start script \(node server\.js\)/);
    assert.equal(s.name, "my-app");
  });

  it("--command wins over package.json and the Dockerfile", () => {
    const s = detectService(
      { folderName: "x", packageJson: pkg({ start: "node a.js" }), dockerfile: 'CMD ["node", "b.js"]' },
      { command: "  python3 app.py " },
    );
    assert.equal(s.command, "python3 app.py");
    assert.equal(s.commandFrom, "--command");
  });

  it("package.json without a start script falls through to the Dockerfile", () => {
    const s = detectService({
      folderName: "x",
      packageJson: pkg({ test: "node --test" }),
      dockerfile: "FROM python:3.12\nCMD python3 -m http.server\n",
    });
    assert.equal(s.command, "python3 -m http.server");
    assert.ok(
      s.checks.some((c) => /not in the image/.test(c)),
      "says the command runs outside the image",
    );
  });

  it("nothing to go on: an error whose fix is --command", () => {
    assert.throws(
      () => detectService({ folderName: "x" }),
      (e: unknown) => e instanceof StayupError && /--command/.test(e.hint ?? ""),
    );
  });

  it("a package.json that is not JSON is named, with the way around it", () => {
    assert.throws(
      () => detectService({ folderName: "x", packageJson: "{ nope" }),
      (e: unknown) => e instanceof StayupError && /package\.json is not JSON/.test(e.message),
    );
  });
});

describe("stayup init: Dockerfile CMD and ENTRYPOINT as Docker composes them", () => {
  const cases: [string, string, string | undefined][] = [
    ["exec-form CMD", 'FROM node:20\nCMD ["node", "server.js"]', "node server.js"],
    ["shell-form CMD", "FROM node:20\nCMD node server.js --port $PORT", "node server.js --port $PORT"],
    ["lower-case keyword", "from node:20\ncmd node server.js", "node server.js"],
    ["the last CMD wins", 'CMD ["a"]\nCMD ["node", "b.js"]', "node b.js"],
    [
      "exec ENTRYPOINT + exec CMD",
      'ENTRYPOINT ["python3", "app.py"]\nCMD ["--workers", "2"]',
      "python3 app.py --workers 2",
    ],
    ["shell ENTRYPOINT ignores CMD", 'ENTRYPOINT exec ./server\nCMD ["--ignored"]', "exec ./server"],
    ["exec ENTRYPOINT alone", 'ENTRYPOINT ["./bin/server"]', "./bin/server"],
    [
      "exec ENTRYPOINT + shell CMD",
      'ENTRYPOINT ["tini", "--"]\nCMD node s.js',
      "tini -- /bin/sh -c 'node s.js'",
    ],
    ["sh -c in exec form", 'CMD ["sh", "-c", "node server.js > out.log"]', "node server.js > out.log"],
    ["an argument with a space is quoted", 'CMD ["node", "my server.js"]', "node 'my server.js'"],
    ["continuation lines and comments", "FROM x\n# CMD wrong\nCMD node \\\n  server.js", "node server.js"],
    [
      "only a build stage's CMD: the final stage has none",
      'FROM a AS build\nCMD ["x"]\nFROM b\nRUN true',
      undefined,
    ],
    ["no CMD at all", "FROM node:20\nRUN npm ci", undefined],
  ];
  for (const [name, dockerfile, expected] of cases) {
    it(name, () => assert.equal(dockerCommand(dockerfile), expected));
  }
});

describe("stayup init: port and health path", () => {
  it("EXPOSE gives the port (tcp kept, udp skipped); ENV PORT when nothing is exposed", () => {
    assert.deepEqual(dockerPorts("EXPOSE 53/udp 3000/tcp 9090").exposed, [3000, 9090]);
    assert.equal(dockerPorts("ENV NODE_ENV=production PORT=4000").envPort, 4000);
    assert.equal(dockerPorts("ENV PORT 5000").envPort, 5000);
    const s = detectService({ folderName: "x", dockerfile: "EXPOSE 3000 9090\nCMD node s.js" });
    assert.equal(s.port, 3000);
    assert.match(s.portFrom, /EXPOSE 3000/);
    assert.ok(
      s.checks.some((c) => c.includes("3000, 9090")),
      "says which of several ports it took",
    );
    const fromEnv = detectService({ folderName: "x", dockerfile: "ENV PORT=4000\nCMD node s.js" });
    assert.equal(fromEnv.port, 4000);
  });

  it("defaults, and --port / --health-path over them", () => {
    const d = detectService({ folderName: "x", packageJson: pkg({ start: "node s.js" }) });
    assert.equal(d.port, DEFAULT_PORT);
    assert.equal(d.healthPath, DEFAULT_HEALTH_PATH);
    assert.ok(
      d.checks.some((c) => c.includes("--health-path")),
      "suggests a health path",
    );
    const c = detectService(
      { folderName: "x", packageJson: pkg({ start: "node s.js" }), dockerfile: "EXPOSE 3000" },
      { port: 8081, healthPath: "/healthz" },
    );
    assert.equal(c.port, 8081);
    assert.equal(c.healthPath, "/healthz");
    assert.ok(!c.checks.some((ch) => ch.includes("--health-path")));
  });

  it("a health path that is not a path is refused", () => {
    assert.throws(
      () => detectService({ folderName: "x", packageJson: pkg({ start: "x" }) }, { healthPath: "health" }),
      StayupError,
    );
  });

  it("names the schema accepts, from package names and folders", () => {
    assert.equal(descriptionName("@acme/Web_Shop"), "web-shop");
    assert.equal(descriptionName("2fast"), "fast");
    assert.equal(descriptionName("a-very-long-service-name-indeed"), "a-very-long-service-n");
    assert.equal(descriptionName("x"), "app");
    assert.match(descriptionName("My Service!!"), /^[a-z][a-z0-9-]{1,20}$/);
  });
});

describe("stayup init: the description it writes", () => {
  it("holds the detected values", () => {
    const text = renderDescription(
      detectService(
        { folderName: "shop", packageJson: pkg({ start: "node s.js" }, "shop") },
        { healthPath: "/healthz", port: 3000 },
      ),
    );
    assert.match(text, /import \{ defineStack \} from "stayup";/);
    assert.match(text, /start: \{ command: "npm start", workingDirectory: "\." \}/);
    assert.match(text, /path: "\/healthz"/);
    assert.match(text, /port: 3000,/);
    assert.match(text, /name: "shop"/);
  });

  it("is a valid stack description", async () => {
    const text = renderDescription(
      detectService({ folderName: "shop", dockerfile: 'CMD ["sh", "-c", "echo \\"hi\\" && node s.js"]' }),
    );
    // The object literal is plain data: evaluate it without the import.
    const literal = text.slice(text.indexOf("defineStack(") + "defineStack(".length, text.lastIndexOf(");"));
    const description: unknown = new Function(`return (${literal});`)();
    const valid = validateStack(description, "init's description");
    assert.equal(valid.name, "shop");
    assert.equal(valid.webService.start?.command, 'echo "hi" && node s.js');
    assert.equal(valid.webService.start?.workingDirectory, ".");
    assert.equal(valid.targetGroup.healthCheck.path, "/");
  });
});
