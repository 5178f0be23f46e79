/**
 * An ECS task's availability zone: its task definition cannot carry it (the task lands where ECS
 * places it), so the service reads it from the task metadata endpoint v4 that the ECS agent names in
 * ECS_CONTAINER_METADATA_URI_V4. Here a real HTTP server on loopback plays the endpoint.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { bundleWebService } from "../src/web-service/bundle.ts";
import { type StartedWebService, startWebService, TestRedis, tempDir } from "./helpers.ts";

describe("web service on ECS: the AZ from the task metadata endpoint v4", () => {
  let entry: string;
  let redis: TestRedis;
  let metadata: Server;
  let metadataUri: string;
  const asked: string[] = [];
  const started: StartedWebService[] = [];

  before(async () => {
    entry = await bundleWebService(tempDir());
    redis = await TestRedis.start();
    // The shape of GET ${ECS_CONTAINER_METADATA_URI_V4}/task (trimmed to what the service reads and a neighbour).
    metadata = createServer((req, res) => {
      asked.push(req.url ?? "");
      if (req.url === "/v4/0123456789abcdef-1234/task") {
        res.setHeader("content-type", "application/json");
        res.end(
          JSON.stringify({ Cluster: "stayup-prod", AvailabilityZone: "eu-west-3b", LaunchType: "EC2" }),
        );
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((resolve) => metadata.listen(0, "127.0.0.1", resolve));
    metadataUri = `http://127.0.0.1:${(metadata.address() as AddressInfo).port}/v4/0123456789abcdef-1234`;
  });
  after(async () => {
    for (const s of started) s.child.kill("SIGKILL");
    metadata?.close();
    await redis?.stop();
  });

  const identityOf = async (s: StartedWebService) => {
    const res = await request(`${s.url}/`);
    return JSON.parse(await res.body.text()) as { availabilityZone: string };
  };

  it("without STAYUP_AZ, the page and the metrics name the AZ the endpoint gives", async () => {
    const s = await startWebService({ modulePath: entry, args: [] }, redis.port, {
      STAYUP_AZ: undefined,
      ECS_CONTAINER_METADATA_URI_V4: metadataUri,
    });
    started.push(s);
    assert.equal((await identityOf(s)).availabilityZone, "eu-west-3b");
    assert.ok(asked.includes("/v4/0123456789abcdef-1234/task"), `asked: ${asked.join(", ")}`);
    const metrics = await (await request(`${s.url}/metrics`)).body.text();
    assert.match(metrics, /availability_zone="eu-west-3b"/);
  });

  it("STAYUP_AZ, when given (EC2 user data), wins over the endpoint", async () => {
    const s = await startWebService({ modulePath: entry, args: [] }, redis.port, {
      ECS_CONTAINER_METADATA_URI_V4: metadataUri,
    });
    started.push(s);
    assert.equal((await identityOf(s)).availabilityZone, "eu-west-3a");
  });

  it("an endpoint that does not answer leaves the AZ unknown and the service up", async () => {
    const s = await startWebService({ modulePath: entry, args: [] }, redis.port, {
      STAYUP_AZ: undefined,
      ECS_CONTAINER_METADATA_URI_V4: `${metadataUri}-gone`,
    });
    started.push(s);
    assert.equal((await identityOf(s)).availabilityZone, "unknown");
  });
});
