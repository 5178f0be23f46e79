import type { Command } from "commander";

/**
 * Examples shown at the end of `stayup <command> --help`, by command path ("ci plan"). Every
 * command has some (test/cli-help.test.ts); a drill without its own entry gets the drill examples.
 */
export const helpExamples: Record<string, string[]> = {
  init: [
    "npx stayup init                                   # package.json's start script, or the Dockerfile's CMD",
    'npx stayup init --command "python3 app.py" --health-path /healthz',
    "npx stayup init --force --port 3000               # rewrite it; instances listen on 3000 on AWS",
  ],
  up: [
    "npx stayup up                          # the description's stack in the foreground (Ctrl-C stops it)",
    "npx stayup up --detach                 # in the background, once every instance is healthy",
    "npx stayup up --topology ecs --env prod",
    "npx stayup up --port 0 --redis-port 0 --dns-port 0 --state-dir .stayup-2   # a second stack beside the first",
  ],
  down: ["npx stayup down", "npx stayup down --state-dir .stayup-2"],
  status: ["npx stayup status", "npx stayup status --json | jq '.regions[].instances'"],
  drill: [
    "npx stayup drill kill-instance",
    "npx stayup drill redis-failover --json",
    "npx stayup drill az-outage --report az.html   # az.html and az.json",
  ],
  faults: ["npx stayup faults", "npx stayup faults clear"],
  "faults list": ["npx stayup faults list", "npx stayup faults list --json"],
  "faults clear": ["npx stayup faults clear", "npx stayup faults clear --state-dir .stayup-2"],
  roll: [
    "npx stayup roll                          # after editing the service: the new version, launch first",
    "npx stayup roll --set LOG_LEVEL=debug",
    "npx stayup roll --set STAYUP_BROKEN=crash   # a broken version on purpose: it is rolled back",
  ],
  report: ["npx stayup report .stayup/reports/kill-instance-*.json --out kill.html"],
  synth: [
    "npx stayup synth                         # dev and prod, no credentials needed",
    "npx stayup synth --topology ecs --env prod --out cdk.out",
    "npx stayup synth --topology all --env dev   # every topology, each in cdk.out/<topology>/dev",
  ],
  check: ["npx stayup check                  # dev and prod", "npx stayup check --topology single-instance"],
  cost: ["npx stayup cost --env dev", "npx stayup cost --topology ecs --json"],
  diagram: ["npx stayup diagram --env prod > architecture.mmd", "npx stayup diagram --target local"],
  deploy: [
    "npx stayup deploy --env dev",
    "npx stayup deploy --env prod --topology ecs --image-tag prod-$(git rev-parse HEAD)",
  ],
  destroy: ["npx stayup destroy --env dev"],
  outputs: ["npx stayup outputs --env dev"],
  ci: ["npx stayup ci plan --env prod", "npx stayup ci bootstrap"],
  "ci plan": ["npx stayup ci plan --env dev", "npx stayup ci plan --env prod --json"],
  "ci bootstrap": ["npx stayup ci bootstrap"],
};

/** A drill's examples: the same three forms for every drill. */
const drillExamples = (name: string) => [
  `npx stayup drill ${name}`,
  `npx stayup drill ${name} --json`,
  `npx stayup drill ${name} --rate 100 --report ${name}.html`,
];

/** The command's path below the program: "ci plan". */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** Adds "Examples:" to the help of every command under `program`. */
export function addHelpExamples(program: Command): void {
  const visit = (command: Command) => {
    for (const sub of command.commands) {
      const key = commandPath(sub);
      const examples =
        helpExamples[key] ?? (sub.parent?.name() === "drill" ? drillExamples(sub.name()) : undefined);
      if (examples) sub.addHelpText("after", `\nExamples:\n${examples.map((e) => `  ${e}`).join("\n")}`);
      visit(sub);
    }
  };
  visit(program);
}
