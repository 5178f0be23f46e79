/**
 * Where a single instance's recovery time goes: SIGKILLs the instance of a temporary
 * `--topology single-instance` stack a few times and prints, per run, the phases from the
 * events' timestamps (finish-off and detach, Redis up on the volume, web listening, address
 * associated) and when a client first got an answer again.
 *   node --import tsx bench/single-instance-recovery.ts [runs]
 */
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { StackSession } from "../src/cli/stack-session.ts";
import type { TimedStackEvent } from "../src/local/events/bus.ts";
import { sleep } from "../src/shared/net.ts";
import { loadStack } from "../src/stack/index.ts";

const runs = Number(process.argv[2] ?? 3);
const config = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../stayup.config.ts");
const session = await StackSession.temporary(await loadStack(config, "dev", { topology: "single-instance" }));
const events: TimedStackEvent[] = [];
const abort = new AbortController();
const reading = (async () => {
  for await (const e of session.client.events(abort.signal)) events.push(e);
})().catch(() => undefined);
const answers = async (url: string) => {
  try {
    const res = await request(`${url}/`, { reset: true, headersTimeout: 1000 });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
};
try {
  for (let run = 1; run <= runs; run++) {
    const status = await session.client.status();
    const victim = status.instances[0];
    if (!victim) throw new Error("no instance");
    for (let i = 0; i < 200; i++) await answers(status.listener); // some count in the append-only file
    const from = events.length;
    const killedAt = Date.now();
    process.kill(victim.pid, "SIGKILL");
    while (!(await answers(status.listener))) await sleep(10);
    const answeredAt = Date.now();
    await sleep(300);
    const at = (type: string) => {
      const e = events.slice(from).find((x) => x.type === type);
      return e ? `${((Date.parse(e.time) - killedAt) / 1000).toFixed(2)}` : "-";
    };
    console.log(
      `run ${run}: terminated+detached ${at("volume.detached")} s, redis up and volume attached ${at("volume.attached")} s, ` +
        `web listening ${at("instance.launched")} s, address associated ${at("address.associated")} s, ` +
        `first answer ${((answeredAt - killedAt) / 1000).toFixed(2)} s   (load average ${loadavg()[0]?.toFixed(1)})`,
    );
    await sleep(1000);
  }
} finally {
  abort.abort();
  await reading;
  await session.stop();
}
