import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { writePrivateFileAtomic } from "../src/shared/private-file.ts";

describe("writePrivateFileAtomic", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "stayup-private-file-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes the file for its owner only", () => {
    const file = path.join(dir, "secret");
    writePrivateFileAtomic(file, "s3cret\n");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ["secret"], "no temporary file left");
  });

  it("a write that cannot complete throws and leaves no temporary file behind", () => {
    // A folder where the file should go: the rename fails.
    const blocked = path.join(dir, "processes.json");
    mkdirSync(blocked);
    writeFileSync(path.join(blocked, "keep"), "");
    assert.throws(() => writePrivateFileAtomic(blocked, "{}"), /EISDIR|ENOTEMPTY|EEXIST|directory/i);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith(".tmp")),
      [],
      "the temporary copy is removed",
    );
  });
});
