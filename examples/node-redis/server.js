// A page counter in Redis: an ordinary Node.js service that knows nothing of stayup. It reads
// PORT, HOST and REDIS_URL (and STAYUP_INSTANCE_ID, only to say which instance answered).
import http from "node:http";
import { Redis } from "ioredis";

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? "127.0.0.1";
const instanceId = process.env.STAYUP_INSTANCE_ID ?? "local";

// REDIS_URL always reaches the current primary (ElastiCache's primary endpoint on AWS). On a
// failover the connection is closed: ioredis reconnects (every 100 ms) and resends what was in flight.
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", {
  retryStrategy: () => 100,
  maxRetriesPerRequest: null, // commands wait for the reconnection; the request's own deadline bounds them
  reconnectOnError: (error) => error.message.startsWith("READONLY"),
});
redis.on("error", () => {}); // reconnects by itself; requests answer 503 if it takes too long

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Replicas connected to the primary (cached 1 s): a count is answered once one of them holds it. */
let replicas = { count: 0, at: 0 };
async function connectedReplicas() {
  if (Date.now() - replicas.at > 1000) {
    const role = await redis.call("ROLE");
    replicas = { count: Array.isArray(role?.[2]) ? role[2].length : 0, at: Date.now() };
  }
  return replicas.count;
}

/**
 * INCR, then WAIT for a replica where there is one, so a count a client saw survives a failover.
 * A failover refuses writes for a moment (connection closed, NOREPLICAS, READONLY): retried for
 * up to 5 s, then 503.
 */
async function increment() {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      const count = await withTimeout(redis.incr("hits"), deadline - Date.now());
      if ((await connectedReplicas()) > 0) {
        const held = await withTimeout(redis.wait(1, 1000), deadline - Date.now());
        if (held < 1) throw new Error("no replica acknowledged the count");
      }
      return count;
    } catch (error) {
      if (Date.now() + 100 >= deadline) throw error;
      replicas.at = 0;
      await sleep(100);
    }
  }
}

function withTimeout(promise, ms) {
  return Promise.race([
    promise,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error("Redis did not answer in time")), Math.max(ms, 0)),
    ),
  ]);
}

const server = http.createServer(async (req, res) => {
  const answer = (status, body) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const path = (req.url ?? "/").split("?")[0];
  try {
    if (path === "/health") return answer(200, { status: "ok", instanceId });
    if (path === "/") return answer(200, { count: await increment(), instanceId });
    // The consistency probe: the count, read without incrementing it.
    if (path === "/count")
      return answer(200, { count: Number((await withTimeout(redis.get("hits"), 5000)) ?? 0), instanceId });
    return answer(404, { error: "not found" });
  } catch (error) {
    return answer(503, { error: error.message, instanceId });
  }
});

server.listen(port, host, () => console.log(`listening on http://${host}:${port} as ${instanceId}`));

// Stopped (scale-in, roll, `stayup down`): finish the requests in flight, then leave.
process.on("SIGTERM", () => {
  server.close(() => {
    redis.disconnect();
    process.exit(0);
  });
  server.closeIdleConnections();
});
