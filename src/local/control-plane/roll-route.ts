import type http from "node:http";
import path from "node:path";
import { bundleWebService } from "../../web-service/bundle.ts";
import { serviceFolderOf } from "../../web-service/version.ts";
import { instanceSettingsProblems, rollBodyLimitBytes } from "../rolling-deploy/instance-settings.ts";
import { defaultBodyDeadlineMs, readBoundedBody, refuseBody } from "./body.ts";
import { rollStack } from "../rolling-deploy/roll.ts";
import type { LocalRegion } from "../region.ts";
import type { LocalStack } from "../runtime.ts";
import { SingleInstanceLocalStack } from "../single-instance/stack.ts";

/**
 * POST /roll {"settings": {...}}: a rolling deploy of every region's group to the version those
 * instance settings make (region by region, see rollStack); answers the roll's result, with one
 * entry per region, once it finished or was rolled back. Only instance settings: a name that changes
 * how a process loads code, or that stayup sets itself, is refused with 400 and the reason
 * (instance-settings.ts); a body over rollBodyLimitBytes with 413, one that has not arrived within
 * the deadline with 408 (body.ts).
 */
export async function handleRoll(
  stack: LocalStack,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  bodyDeadlineMs = defaultBodyDeadlineMs,
) {
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  // A bounded body: settings are a few short strings; a bigger or a trickled body is refused, not
  // buffered or waited for.
  const read = await readBoundedBody(req, { limitBytes: rollBodyLimitBytes, deadlineMs: bodyDeadlineMs });
  if (!read.ok) return refuseBody(res, read);
  const body = read.text;
  let settings: Record<string, string>;
  try {
    const parsed = JSON.parse(body || "{}") as { settings?: unknown; keepSettings?: unknown };
    const given = parsed.settings ?? {};
    if (typeof given !== "object" || given === null || Array.isArray(given)) {
      return reply(400, { error: "settings must be an object of strings" });
    }
    const problems = instanceSettingsProblems(given as Record<string, unknown>);
    if (problems.length > 0) return reply(400, { error: problems.join("; "), problems });
    settings = given as Record<string, string>;
    // `keepSettings`: on top of the settings the group runs with (an earlier `roll --set`), as
    // `stayup up` asks, so that bringing a stack up to date does not undo them.
    if (parsed.keepSettings === true && !(stack instanceof SingleInstanceLocalStack)) {
      settings = { ...stack.primary.group.versionSettings, ...settings };
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
    // The user's service is its folder: a change there is a new version (not only the bundle's).
    const serviceFolder = serviceFolderOf(stack.options.stack.webService.start, stack.options.stateDir);
    return reply(200, await rollStack(regions, stack.events, { settings, artifact, serviceFolder }));
  } catch (error) {
    return reply(500, { error: (error as Error).message });
  }
}
