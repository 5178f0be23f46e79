/**
 * What an ElastiCache Global Datastore (redis.crossRegion "replica") accepts, apart from the
 * description's types: the schema refuses with it, so it imports nothing from the schema.
 */

/**
 * Why ElastiCache refuses `nodeType` in a Global Datastore, or undefined when it accepts it. AWS:
 * "Global Datastore is supported on M5, M6g, M7g, R5, R6g, R6gd, R7g node types, large and above"
 * (ElastiCache user guide, "Replication across AWS Regions using global datastores", Prerequisites).
 * The T and C families and sizes below large are refused (a t4g.micro has neither the memory nor the
 * network the cross-region link needs).
 */
export function globalDatastoreNodeTypeProblem(nodeType: string): string | undefined {
  const match = /^cache\.([a-z])(\d+)([a-z]*)\.([a-z0-9]+)$/.exec(nodeType);
  if (!match) return `"${nodeType}" is not a node type such as cache.r7g.large`;
  const [, family, , , size] = match as unknown as [string, string, string, string, string];
  const why =
    'an ElastiCache Global Datastore (crossRegion: "replica") runs on M and R node types, large and above';
  const fix = 'pick cache.r7g.large or cache.m7g.large, or set crossRegion: "none"';
  if (family !== "m" && family !== "r")
    return `${nodeType}: ${why} (not the ${family.toUpperCase()} family); ${fix}`;
  if (!/^(\d*xlarge|large|metal)$/.test(size)) return `${nodeType}: ${why} (not ${size}); ${fix}`;
  return undefined;
}
