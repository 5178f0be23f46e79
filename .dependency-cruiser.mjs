// The house's import rules, checked by `npm run lint` (dependency-cruiser): no import circle in
// src/, and no import from a lower layer to a higher one. A module may import its own layer and
// the layers below it. Type-only imports count: a type shared both ways is still a place where a
// change must be understood from both sides. docs/layers.md says why each layer is where it is.

/**
 * src/'s layers, lowest first. Each may import only itself and the layers before it. A layer's
 * `path` is a regular expression on the path from the repository's root.
 */
export const layers = [
  {
    name: "shared",
    path: "^src/shared/",
    comment: "helpers that know nothing of stayup: errors, ports, private files, process facts",
  },
  {
    name: "stack",
    path: "^src/stack/",
    comment:
      "the stack description: schema, resolution, and the values derived from it that both renderers use",
  },
  {
    name: "web-service",
    path: "^src/web-service/",
    comment:
      "the application both renderers run, and its bundler: reads derived settings, not how it is hosted",
  },
  {
    name: "renderers",
    path: "^src/(aws|local)/",
    comment:
      "the description rendered to CDK (aws) and run on one machine (local); peers, see renderers-apart",
  },
  {
    name: "drills",
    path: "^src/drills/",
    comment: "break a running local stack on purpose, through its control plane, and report",
  },
  {
    name: "cli",
    path: "^src/cli/",
    comment: "the commands: compose everything below; nothing imports them",
  },
];

/**
 * src/local/'s tiers, lowest first, with the same rule. The controllers (one concern each) know
 * each other's types but not the region, runtime and topology stacks that compose them.
 */
export const localTiers = [
  {
    name: "local-plumbing",
    path: "^src/local/(events/|tls/|controller-guard\\.ts$|processes\\.ts$|up-lock\\.ts$|faults/registry\\.ts$)",
    comment:
      "what every controller uses: the event bus and its vocabulary, the error guard, the process registry, the local CA, the record of faults in force (the runtime owns it; drills lease them)",
  },
  {
    name: "local-controllers",
    path: "^src/local/((dns|failover|instance-group|load-balancer|notifications|redis|scaling|target-group)/|ecs/(?!stack\\.ts$|faults\\.ts$)|single-instance/(?!stack\\.ts$))",
    comment:
      "one concern each (a group, a target group, the balancer, Redis, DNS failover, ECS service, ...)",
  },
  {
    name: "local-composition",
    path: "^src/local/(region\\.ts$|runtime\\.ts$|leftovers\\.ts$|rolling-deploy/|topologies/|ecs/stack\\.ts$|single-instance/stack\\.ts$)",
    comment:
      "wires controllers into regions and a LocalStack (runtime.ts), the topologies' stacks that extend it, what acts on a whole region (a roll) or a killed run (leftovers)",
  },
  {
    name: "local-operations",
    path: "^src/local/(control-plane/|faults/(?!registry\\.ts$)|dashboard/|ecs/faults\\.ts$)",
    comment: "the control plane over a running stack and what it serves: fault routes, the dashboard",
  },
];

/**
 * Known exceptions, each named and to be deleted once its arrow is gone. `rule` names the layer
 * rule it loosens; only imports from `from` to `to` are let through.
 */
export const knownExceptions = [];

/** For each layer but the last: it may not import any layer after it. */
function upwardRules(ordered) {
  return ordered.slice(0, -1).map((layer, index) => ({
    name: `not-above-${layer.name}`,
    comment: `${layer.name} (${layer.comment}) imports none of: ${ordered
      .slice(index + 1)
      .map((l) => l.name)
      .join(", ")}`,
    severity: "error",
    from: { path: layer.path },
    to: { path: ordered.slice(index + 1).map((l) => l.path) },
  }));
}

/** Lets one exception's arrow through its rule, and only that arrow. */
function withExceptions(rules) {
  return rules.flatMap((rule) => {
    const exceptions = knownExceptions.filter((e) => e.rule === rule.name);
    if (exceptions.length === 0) return [rule];
    return [
      { ...rule, from: { ...rule.from, pathNot: exceptions.map((e) => e.from) } },
      ...exceptions.map((e) => ({
        ...rule,
        name: `${rule.name}-except-${e.name}`,
        comment: `${rule.comment}; known exception ${e.name}: ${e.comment}`,
        from: { path: e.from },
        to: { ...rule.to, pathNot: e.to },
      })),
    ];
  });
}

const everyPath = (list) => list.map((l) => l.path);

/** @type {import("dependency-cruiser").IConfiguration} */
export default {
  forbidden: [
    {
      name: "no-circular",
      comment: "an import circle: a change on it must be understood from both sides",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    ...withExceptions(upwardRules(layers)),
    ...upwardRules(localTiers),
    {
      name: "renderers-apart",
      comment: "aws and local render the same description; what both need lives in src/stack",
      severity: "error",
      from: { path: "^src/aws/" },
      to: { path: "^src/local/" },
    },
    {
      name: "renderers-apart-local",
      comment: "aws and local render the same description; what both need lives in src/stack",
      severity: "error",
      from: { path: "^src/local/" },
      to: { path: "^src/aws/" },
    },
    {
      name: "in-a-layer",
      comment: "a module of src/ outside every layer: give it one above",
      severity: "error",
      from: { path: "^src/", pathNot: everyPath(layers) },
      to: {},
    },
    {
      name: "in-a-local-tier",
      comment: "a module of src/local/ outside every tier: give it one above",
      severity: "error",
      from: { path: "^src/local/", pathNot: everyPath(localTiers) },
      to: {},
    },
  ],
  options: {
    // Type-only imports are arrows too (see the top of this file).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    includeOnly: "^src/",
    doNotFollow: { path: "node_modules" },
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
