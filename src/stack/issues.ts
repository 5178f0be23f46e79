import { closest, distance } from "fastest-levenshtein";
import type { z } from "zod";

/**
 * One schema problem in the words of the description: what the field must be, what was given
 * (echoed, so a typo is seen), and the nearest allowed name or value when one is close.
 */
export function describeIssue(issue: z.core.$ZodIssue, schema: z.ZodType): string {
  if (issue.code === "unrecognized_keys") {
    const known = knownKeysAt(schema, issue.path);
    return issue.keys
      .map((key) => {
        const near = nearest(key, known);
        return near
          ? `unknown field "${key}": did you mean "${near}"?`
          : `unknown field "${key}": remove it or check the spelling${known.length ? ` (allowed: ${known.join(", ")})` : ""}`;
      })
      .join("; ");
  }
  if (issue.input === undefined) {
    return issue.code === "invalid_type" ? `is required (${issue.expected})` : issue.message;
  }
  if (issue.code === "invalid_type") {
    return `must be ${article(issue.expected)} ${issue.expected}, got ${kind(issue.input)} ${shown(issue.input)}`;
  }
  const given = isPrimitive(issue.input) ? `, got ${shown(issue.input)}` : "";
  if (issue.code === "invalid_value" && typeof issue.input === "string") {
    const near = nearest(
      issue.input,
      issue.values.filter((v): v is string => typeof v === "string"),
    );
    return `${issue.message}${given}${near ? `: did you mean "${near}"?` : ""}`;
  }
  // A message that already names the value given ("must be ≤ max (4), got 9") is left as it is.
  return /\bgot\b/.test(issue.message) ? issue.message : `${issue.message}${given}`;
}

/**
 * The required fields reported missing only because they were misspelt: "name is required" beside
 * "unknown field nmae: did you mean name?" says one thing twice, so the first is left out.
 */
export function misspeltRequiredFields(
  issues: readonly z.core.$ZodIssue[],
  schema: z.ZodType,
): Set<z.core.$ZodIssue> {
  const missing = issues.filter((i) => i.code === "invalid_type" && i.input === undefined);
  const explained = new Set<z.core.$ZodIssue>();
  for (const issue of issues) {
    if (issue.code !== "unrecognized_keys") continue;
    const known = knownKeysAt(schema, issue.path);
    for (const key of issue.keys) {
      const near = nearest(key, known);
      const required = missing.find(
        (m) =>
          m.path.length === issue.path.length + 1 &&
          m.path.at(-1) === near &&
          issue.path.every((k, n) => m.path[n] === k),
      );
      if (required) explained.add(required);
    }
  }
  return explained;
}

/** The closest of `candidates` to `word`, if it is near enough to be a typo of it. */
function nearest(word: string, candidates: readonly string[]): string | undefined {
  if (candidates.length === 0) return undefined;
  const best = closest(word, [...candidates]);
  return distance(word.toLowerCase(), best.toLowerCase()) <= Math.max(2, Math.floor(word.length / 3))
    ? best
    : undefined;
}

type Def = {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  getter?: () => z.ZodType;
};

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The object schemas `schema` may be at this level, through optional, default, pipe and unions. */
function objectsOf(schema: z.ZodType): Def[] {
  const def = defOf(schema);
  if (def.type === "object") return [def];
  if (def.innerType) return objectsOf(def.innerType);
  if (def.type === "pipe" && def.in) return objectsOf(def.in);
  if (def.type === "lazy" && def.getter) return objectsOf(def.getter());
  if (def.type === "union" && def.options) return def.options.flatMap(objectsOf);
  return [];
}

/** The schema one step down `key` (a field, an array element or a record's value). */
function childOf(schema: z.ZodType, key: PropertyKey): z.ZodType[] {
  const def = defOf(schema);
  if (def.innerType) return childOf(def.innerType, key);
  if (def.type === "pipe" && def.in) return childOf(def.in, key);
  if (def.type === "lazy" && def.getter) return childOf(def.getter(), key);
  if (def.type === "union" && def.options) return def.options.flatMap((o) => childOf(o, key));
  if (def.type === "array" && def.element) return [def.element];
  if (def.type === "record" && def.valueType) return [def.valueType];
  const field = def.type === "object" ? def.shape?.[String(key)] : undefined;
  return field ? [field] : [];
}

/** The field names the schema allows at `path` (empty if the path cannot be followed). */
export function knownKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let level = [schema];
  for (const key of path) level = level.flatMap((s) => childOf(s, key));
  return [...new Set(level.flatMap(objectsOf).flatMap((d) => Object.keys(d.shape ?? {})))];
}

const isPrimitive = (v: unknown): v is string | number | boolean =>
  typeof v === "string" || typeof v === "number" || typeof v === "boolean";

const kind = (v: unknown): string => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);

const shown = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

const article = (word: string): string => (/^[aeiou]/.test(word) ? "an" : "a");
