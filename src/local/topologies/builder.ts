import type { LocalStack, LocalStackOptions } from "../runtime.ts";

/** Builds the local runtime of one topology from the description (nothing starts until `start()`). */
export type LocalTopologyBuilder = (options: LocalStackOptions) => LocalStack;
