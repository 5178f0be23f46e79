import type http from "node:http";
import path from "node:path";
import { bundleWebService } from "../../web-service/bundle.ts";
import { rollStack } from "../rolling-deploy/roll.ts";
import type { LocalRegion } from "../region.ts";
import type { LocalStack } from "../runtime.ts";
import { SingleInstanceLocalStack } from "../single-instance/stack.ts";

/**
 * POST /roll {"settings": {...}}: a rolling deploy of every region's group to the version those
 * instance settings make (region by region, see rollStack); answers the roll's result, with one
 * entry per region, once it finished or was rolled back.
 */
export async function handleRoll(stack: LocalStack, req: http.IncomingMessage, res: http.ServerResponse) {
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  let body = "";
  for await (const chunk of req) body += chunk;
  let settings: Record<string, string>;
  try {
    const parsed = JSON.parse(body || "{}") as { settings?: unknown; keepSettings?: unknown };
    settings = (parsed.settings ?? {}) as Record<string, string>;
    // `keepSettings`: on top of the settings the group runs with (an earlier `roll --set`), as
    // `stayup up` asks, so that bringing a stack up to date does not undo them.
    if (
      parsed.keepSettings === true &&
      typeof settings === "object" &&
      !(stack instanceof SingleInstanceLocalStack)
    ) {
      settings = { ...stack.primary.group.versionSettings, ...settings };
    }
    if (typeof settings !== "object" || Object.values(settings).some((v) => typeof v !== "string")) {
      return reply(400, { error: "settings must be an object of strings" });
    }
  } catch {
    return reply(400, { error: 'the body must be JSON: {"settings": {"NAME": "value"}}' });
  }
  try {
    // The bundle is rebuilt, so a code change is a new version too (its own folder: running
    // instances keep the file they started from).
    const artifact = await bundleWebService(
      path.join(stack.options.stateDir, "build", `roll-${Date.now()}`),
      {
        codeCache: stack instanceof SingleInstanceLocalStack,
      },
    );
    if (stack instanceof SingleInstanceLocalStack) return reply(200, await stack.roll(artifact, settings));
    const regions = [stack.primary, stack.secondary].filter((r): r is LocalRegion => r !== undefined);
    return reply(200, await rollStack(regions, stack.events, { settings, artifact }));
  } catch (error) {
    return reply(500, { error: (error as Error).message });
  }
}
