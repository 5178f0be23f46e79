/// <reference lib="dom" />
// The dashboard page: fed by the stack's server-sent events, bundled with uPlot by the stack itself.
import { EventSource } from "eventsource";
import uPlot from "uplot";
import type { DrillRunState, DrillsState } from "../../control-plane/drills.ts";
import type { ClientTrafficEvent, TimedStackEvent } from "../../events/bus.ts";
import type { InstanceStatus, RegionStatus, StackStatus } from "../../runtime.ts";
import type { TrafficSample } from "../traffic-meter.ts";

// The token ------------------------------------------------------------------------------------

/**
 * The control plane's token, from the URL's fragment (`/dashboard#token=…`: a browser never sends
 * a fragment to a server). It leaves the address bar at once and is kept in this tab's
 * sessionStorage, which is per origin (host and port): it goes to this server only, as a header,
 * never as a cookie that the browser would send to every server on the host.
 */
const tokenKey = "stayup-control-token";
function takeToken(): string | undefined {
  const fromFragment = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromFragment) {
    sessionStorage.setItem(tokenKey, fromFragment);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(tokenKey) ?? undefined;
}
const token = takeToken();

/** fetch to this control plane, with the token. */
const api = (url: string, init: RequestInit = {}) =>
  fetch(url, {
    ...init,
    credentials: "omit",
    headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token ?? ""}` },
  });

const windowSeconds = 300;
/** Events worth a mark on the traffic chart's time axis. */
const marked: Record<string, string> = {
  "instance.terminated": "#dc2626",
  "target.unhealthy": "#f97316",
  "target.healthy": "#16a34a",
  "group.capacity-changed": "#2563eb",
  "redis.failover": "#9333ea",
  "alarm.state-changed": "#b91c1c",
  "failover.action": "#0f766e",
  "roll.started": "#0891b2",
  "roll.completed": "#4d7c0f",
  "roll.rolled-back": "#be185d",
};

/** A region's last roll, as its roll.* events tell it (a rollback's from/to are the roll's own). */
interface RegionRoll {
  phase: "rolling" | "rolling-back" | "completed";
  /** The version the roll started from ("old") and the one it rolled to ("new"). */
  from: string;
  to: string;
  reason?: string;
  instancesReplaced?: number;
  durationSeconds?: number;
  time: string;
}

/** One client run's figures, as it reported them (client.traffic events), added up. */
interface ClientRun {
  client: string;
  clientId: string;
  ok: number;
  failed: number;
  refused: number;
  timedOut: number;
  final: boolean;
  firstSecondMs: number;
  /** Failed requests by second (its start, ms), for the chart. */
  failedBySecond: Map<number, number>;
}

/** Client runs shown beside the balancers' figures, newest first. */
const clientRunsShown = 3;

const state = {
  status: undefined as StackStatus | undefined,
  traffic: [] as TrafficSample[],
  events: [] as TimedStackEvent[],
  lastSeq: 0,
  /** Requests in every second received since the page opened (each second once, by its time). */
  counted: { okTotal: 0, failedTotal: 0, lastT: 0 },
  drills: undefined as DrillsState | undefined,
  /** Our clients' own figures (a drill's traffic), by run, in the order they began. */
  clients: new Map<string, ClientRun>(),
  /** Instances that left, kept as tiles for a while so their end is visible. */
  gone: new Map<string, { instance: InstanceStatus; region: string; until: number }>(),
  /** Each region's last roll, by region name. */
  rolls: new Map<string, RegionRoll>(),
};

const $ = (id: string) => document.getElementById(id) as HTMLElement;
const el = (tag: string, attrs: Record<string, string> = {}, ...children: (Node | string)[]) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
};
const badge = (text: string, kind: "ok" | "bad" | "info" | "" = "") =>
  el("span", { class: `badge ${kind}` }, text);

function alarmState(): string {
  const last = [...state.events].reverse().find((e) => e.type === "alarm.state-changed");
  return last?.type === "alarm.state-changed" ? last.state : "OK";
}

/** The container instance an ECS task runs on (undefined for instances). */
function containerInstanceOf(taskId: string): string | undefined {
  return state.status?.ecs?.containerInstances.find((c) => c.tasks.some((t) => t.id === taskId))?.id;
}

/**
 * A version as a short label: `v-` and 7 of its 12 hex digits, as git shortens a commit (the full
 * one is in the label's title and data-version). Anything else (a user's own label) is cut at 9.
 */
const shortVersion = (version: string) => (version.length > 9 ? version.slice(0, 9) : version);

/**
 * How an instance's version reads during a roll: "old" (the roll's from), "new" (its to), or
 * "other version" when it differs from the region's and no roll event says which (none seen).
 */
function versionRole(
  version: string,
  regionVersion: string | undefined,
  roll: RegionRoll | undefined,
): string {
  if (roll) {
    if (version === roll.from) return "old";
    if (version === roll.to) return "new";
  }
  return regionVersion !== undefined && version !== regionVersion ? "other version" : "";
}

function versionLabel(
  i: InstanceStatus,
  regionVersion: string | undefined,
  roll: RegionRoll | undefined,
): HTMLElement[] {
  if (i.version === undefined) return [];
  const role = versionRole(i.version, regionVersion, roll);
  const other = regionVersion !== undefined && i.version !== regionVersion;
  return [
    el(
      "span",
      {
        class: `version${other ? " other" : ""}`,
        "data-version": i.version,
        "data-version-role": role,
        title: other
          ? `runs ${i.version}, not the region's ${regionVersion ?? ""}: the group replaces it`
          : `runs ${i.version}`,
      },
      shortVersion(i.version),
      ...(role ? [el("b", {}, ` ${role}`)] : []),
    ),
  ];
}

function tile(
  i: InstanceStatus,
  rps: number | undefined,
  containerInstance?: string,
  region?: RegionStatus,
): HTMLElement {
  // data-serving: in service however the topology names its health (a single instance: "associated").
  const attrs: Record<string, string> = {
    class: "tile",
    "data-instance": i.id,
    "data-state": i.state,
    "data-health": i.health,
    "data-serving": String(i.healthy),
  };
  if (containerInstance) attrs["data-container-instance"] = containerInstance;
  // Of another version than its region's: being replaced (a roll, or a rollback's).
  if (i.version !== undefined) attrs["data-version"] = i.version;
  const regionVersion = region?.version;
  if (i.version !== undefined && regionVersion !== undefined)
    attrs["data-other-version"] = String(i.version !== regionVersion);
  const roll = region ? rollUnderWay(region) : undefined;
  return el(
    "div",
    attrs,
    el("span", { class: "id" }, i.id),
    el(
      "span",
      { class: "facts" },
      ...(containerInstance ? [el("span", { class: "on" }, `task on ${containerInstance}`)] : []),
      el("span", { class: "state" }, i.state),
      el("span", { class: "health" }, i.health),
      el("span", {}, `CPU ${i.cpuPercent === undefined ? "–" : `${i.cpuPercent.toFixed(0)} %`}`),
      el("span", {}, `${rps ?? 0} req/s`),
      ...versionLabel(i, regionVersion, roll),
    ),
  );
}

/** The region's instances still serving or starting (those draining or gone are on their way out). */
const liveInstances = (region: RegionStatus) =>
  region.instances.filter((i) => i.state !== "terminating" && i.state !== "terminated");

/** A rollback is over once every instance runs the version found again. */
const rolledBack = (region: RegionStatus, roll: RegionRoll) =>
  roll.phase === "rolling-back" && liveInstances(region).every((i) => i.version === roll.from);

/** The region's roll while it is under way, or its rollback: what labels instances old and new. */
function rollUnderWay(region: RegionStatus): RegionRoll | undefined {
  const roll = state.rolls.get(region.name);
  return roll && roll.phase !== "completed" && !rolledBack(region, roll) ? roll : undefined;
}

/** The region's last roll in words: under way (how many on the new version), rolled back, or done. */
function renderRoll(region: RegionStatus): HTMLElement[] {
  const roll = state.rolls.get(region.name);
  if (!roll) return [];
  const [from, to] = [shortVersion(roll.from), shortVersion(roll.to)];
  const at = roll.time.slice(11, 19);
  const live = liveInstances(region);
  const onNew = live.filter((i) => i.version === roll.to).length;
  const back = rolledBack(region, roll);
  const text =
    roll.phase === "rolling"
      ? `rolling ${from} → ${to} since ${at}: ${onNew} of ${live.length} instance(s) on ${to}`
      : roll.phase === "rolling-back"
        ? `${back ? "rolled back" : "rolling back"} ${to} → ${from} (at ${at}): ${roll.reason ?? "no reason given"}`
        : roll.instancesReplaced === 0 && region.instances.length === 0
          ? // A region with none running (a pilot light) only takes the version: its next launch runs it.
            `version set to ${to} at ${at}: no instance running, the next one launched runs it`
          : `rolled to ${to} at ${at}: ${roll.instancesReplaced ?? 0} instance(s) replaced in ${(roll.durationSeconds ?? 0).toFixed(0)} s`;
  const phase = back ? "rolled-back" : roll.phase;
  return [el("div", { class: "roll", "data-roll": phase, "data-from": roll.from, "data-to": roll.to }, text)];
}

function renderRegion(region: RegionStatus, status: StackStatus): HTMLElement {
  const last = state.traffic[state.traffic.length - 1];
  const header = el("h3", {}, region.name, badge(region.role, "info"));
  if (region.down) header.append(badge("DOWN", "bad"));
  if (status.dns && region.role === "primary") {
    header.append(
      badge(
        `health check: ${status.dns.primaryHealthy ? "healthy" : "UNHEALTHY"}`,
        status.dns.primaryHealthy ? "ok" : "bad",
      ),
    );
    const alarm = alarmState();
    header.append(badge(`alarm: ${alarm}`, alarm === "OK" ? "ok" : "bad"));
  }
  if (region.version !== undefined) {
    const version = badge(`version ${shortVersion(region.version)}`);
    version.dataset.regionVersion = region.version;
    version.title = `the version the region's group runs, or is being rolled to: ${region.version}`;
    header.append(version);
  }
  if (status.dns && new URL(region.listener).hostname === status.dns.answer) {
    header.append(badge(`DNS ${status.dns.name} → ${status.dns.answer}`, "info"));
  }
  const g = region.group;
  const zones =
    region.availabilityZones ??
    [...new Set(region.instances.map((i) => i.az))].map((name) => ({ name, impaired: false }));
  const azs = el("div", { class: "azs" });
  for (const zone of zones) {
    const column = el(
      "div",
      { class: `az${zone.impaired ? " impaired" : ""}`, "data-az": zone.name },
      el("h4", {}, zone.name, zone.impaired ? " · IMPAIRED" : ""),
    );
    // Topology ecs: the zone's container instances, then their tasks as tiles.
    const ecs = region.name === status.region ? status.ecs : undefined;
    for (const ci of ecs?.containerInstances.filter((c) => c.az === zone.name) ?? []) {
      column.append(
        el(
          "div",
          { class: "container-instance", "data-container-instance": ci.id },
          `${ci.id} · ${ci.tasks.length} task(s) · free ${ci.free.cpuUnits} CPU units, ${ci.free.memoryMiB} MiB`,
        ),
      );
    }
    for (const i of region.instances.filter((x) => x.az === zone.name))
      column.append(tile(i, last?.byInstance[i.id], ecs ? containerInstanceOf(i.id) : undefined, region));
    for (const [, gone] of state.gone) {
      if (gone.region === region.name && gone.instance.az === zone.name)
        column.append(tile(gone.instance, 0, undefined, region));
    }
    azs.append(column);
  }
  return el(
    "div",
    { class: `region${region.down ? " down" : ""}`, "data-region": region.name },
    header,
    el(
      "div",
      { class: "group" },
      `${status.ecs && region.name === status.region ? "service" : "group"} min ${g.min} · desired ${g.desired} · max ${g.max} · in service ${g.inService}${
        // No instance, no CPU to average: a figure here would be the last one, or the monitor's own.
        g.averageCpuPercent === undefined || region.instances.length === 0
          ? ""
          : ` · average CPU ${g.averageCpuPercent.toFixed(0)} %`
      }`,
    ),
    ...renderRoll(region),
    azs,
  );
}

function renderRedis(status: StackStatus): HTMLElement {
  const failover = [...state.events].reverse().find((e) => e.type === "redis.failover");
  const nodes = status.redis.nodes ?? [
    {
      name: "redis",
      az: "-",
      port: Number(new URL(status.redis.url).port),
      pid: status.redis.pid,
      role: "primary",
    },
  ];
  const rows = nodes.map((n) =>
    el(
      "tr",
      { "data-redis-node": n.name },
      el("td", {}, n.name),
      el("td", {}, n.az),
      el("td", {}, String(n.port)),
      el("td", {}, n.role),
      el("td", {}, "inSync" in n && n.inSync !== undefined ? (n.inSync ? "in sync" : "syncing") : ""),
    ),
  );
  return el(
    "div",
    {},
    el(
      "h3",
      {},
      "Redis",
      failover?.type === "redis.failover"
        ? badge(`last failover ${failover.time.slice(11, 19)}: ${failover.fromAz} → ${failover.toAz}`, "info")
        : badge("no failover yet"),
    ),
    el("table", {}, el("tr", {}, ...["node", "AZ", "port", "role", ""].map((h) => el("th", {}, h))), ...rows),
  );
}

/** Faults in force (a drill's, or one left behind) and the command that clears them, as `stayup status` says. */
function renderFaults(status: StackStatus): HTMLElement[] {
  const faults = status.faults ?? [];
  if (faults.length === 0) return [];
  return [
    el(
      "div",
      { class: "faults", role: "alert" },
      el("h3", {}, `Faults in force (${faults.length})`),
      el(
        "ul",
        {},
        ...faults.map((f) =>
          el(
            "li",
            { "data-fault": f.id },
            f.description,
            f.owner ? ` (drill ${f.owner.drill ?? "?"}: cleared when it ends)` : "",
          ),
        ),
      ),
      el("p", {}, "clear them: ", el("code", {}, faults[0]?.clear ?? "stayup faults clear")),
    ),
  ];
}

function renderTopology(): void {
  const status = state.status;
  if (!status) return;
  const now = Date.now();
  for (const [id, gone] of state.gone) {
    const back = status.regions.some((r) => r.instances.some((i) => i.id === id));
    if (gone.until < now || back) state.gone.delete(id);
  }
  $("stack-name").textContent = `${status.name} (${status.environment})`;
  const version = $("stack-version");
  version.hidden = status.version === undefined;
  version.textContent = status.version === undefined ? "" : `version ${shortVersion(status.version)}`;
  version.title = status.version ?? "";
  // Where the chart's requests are counted: a single instance has no load balancer.
  $("traffic-title").textContent = status.singleInstance
    ? `Traffic through the stable address (${status.singleInstance.address})`
    : "Traffic through the load balancers";
  $("faults").replaceChildren(...renderFaults(status));
  $("regions").replaceChildren(...status.regions.map((r) => renderRegion(r, status)));
  $("redis").replaceChildren(renderRedis(status));
}

function describe(e: TimedStackEvent): string {
  const {
    type: _t,
    time: _time,
    seq: _s,
    region: _r,
    ...rest
  } = e as TimedStackEvent & Record<string, unknown>;
  return Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

/** A client's report: added to its run (each event once: they have ids), not listed as an event. */
function addClientTraffic(e: ClientTrafficEvent): void {
  let run = state.clients.get(e.clientId);
  if (!run) {
    run = {
      client: e.client,
      clientId: e.clientId,
      ok: 0,
      failed: 0,
      refused: 0,
      timedOut: 0,
      final: false,
      firstSecondMs: e.seconds[0]?.secondStartMs ?? Date.now(),
      failedBySecond: new Map(),
    };
    state.clients.set(e.clientId, run);
  }
  for (const s of e.seconds) {
    run.ok += s.ok;
    run.failed += s.failed;
    run.refused += s.refused;
    run.timedOut += s.timedOut;
    run.firstSecondMs = Math.min(run.firstSecondMs, s.secondStartMs);
    if (s.failed)
      run.failedBySecond.set(s.secondStartMs, (run.failedBySecond.get(s.secondStartMs) ?? 0) + s.failed);
  }
  run.final ||= e.final;
  // Older runs beyond what is shown are dropped with their seconds.
  while (state.clients.size > clientRunsShown) state.clients.delete(state.clients.keys().next().value ?? "");
  renderClients();
}

/**
 * Our clients' figures (a drill's traffic), counted where the requests fail: a connection refused
 * because a region is down (DNS still sending clients there) never reaches a balancer, so only the
 * client can count it. A run's totals are what its drill report counts.
 */
function renderClients(): void {
  const runs = [...state.clients.values()].reverse();
  const cell = (text: string) => el("td", { class: "num" }, text);
  $("client-traffic").replaceChildren(
    ...(runs.length === 0
      ? [
          el(
            "p",
            { class: "muted" },
            "no client of stayup's is sending: a drill's traffic shows here, counted by the drill's client",
          ),
        ]
      : [
          el(
            "table",
            {},
            el(
              "tr",
              {},
              ...[
                "counted by the client",
                "since",
                "successful",
                "failed",
                "of them refused",
                "of them timed out",
                "state",
              ].map((h, i) => el("th", i >= 2 && i <= 5 ? { class: "num" } : {}, h)),
            ),
            ...runs.map((r) =>
              el(
                "tr",
                {
                  "data-client-id": r.clientId,
                  "data-client": r.client,
                  "data-ok-total": String(r.ok),
                  "data-failed-total": String(r.failed),
                  "data-refused-total": String(r.refused),
                  "data-timed-out-total": String(r.timedOut),
                  "data-final": String(r.final),
                },
                el("td", {}, r.client),
                el("td", {}, new Date(r.firstSecondMs).toISOString().slice(11, 19)),
                cell(String(r.ok)),
                cell(String(r.failed)),
                cell(String(r.refused)),
                cell(String(r.timedOut)),
                el("td", {}, r.final ? "ended" : "sending"),
              ),
            ),
          ),
        ]),
  );
}

/**
 * A roll's events kept per region (the single instance's carry none: its one region). The next
 * status renders them; a rollback keeps the roll's own from and to, so "old" stays the version found.
 */
function trackRoll(e: TimedStackEvent): void {
  const region = e.region ?? state.status?.region ?? "";
  if (e.type === "roll.started")
    state.rolls.set(region, { phase: "rolling", from: e.fromVersion, to: e.toVersion, time: e.time });
  else if (e.type === "roll.completed") {
    const from = state.rolls.get(region)?.from ?? "";
    state.rolls.set(region, {
      phase: "completed",
      from,
      to: e.version,
      instancesReplaced: e.instancesReplaced,
      durationSeconds: e.durationSeconds,
      time: e.time,
    });
  } else if (e.type === "roll.rolled-back")
    state.rolls.set(region, {
      phase: "rolling-back",
      from: e.toVersion,
      to: e.fromVersion,
      reason: e.reason,
      time: e.time,
    });
  else return;
  renderTopology();
}

function addEvent(e: TimedStackEvent): void {
  if (e.seq <= state.lastSeq) return; // already shown (a resumed stream repeats nothing, but be sure)
  state.lastSeq = e.seq;
  if (e.type === "client.traffic") return addClientTraffic(e);
  state.events.push(e);
  trackRoll(e);
  if (state.events.length > 1000) state.events.shift();
  // An instance terminated or a task stopped: its tile stays a while, so its end is visible.
  const goneId =
    e.type === "instance.terminated" ? e.instanceId : e.type === "task.stopped" ? e.taskId : undefined;
  if (goneId !== undefined) {
    for (const r of state.status?.regions ?? []) {
      const instance = r.instances.find((i) => i.id === goneId);
      if (instance)
        state.gone.set(goneId, {
          instance: { ...instance, state: "terminated", health: "gone", healthy: false },
          region: r.name,
          until: Date.now() + 30_000,
        });
    }
  }
  const list = $("event-list");
  list.prepend(
    el(
      "li",
      { "data-type": e.type },
      el("span", { class: "muted" }, e.time.slice(11, 23)),
      el("span", { class: "type" }, e.type),
      el("span", {}, `${e.region ? `[${e.region}] ` : ""}${describe(e)}`),
    ),
  );
  while (list.children.length > 300) list.lastElementChild?.remove();
}

// Traffic chart -------------------------------------------------------------------------------

let plot: uPlot | undefined;

function chartData(): uPlot.AlignedData {
  const t = state.traffic;
  return [
    t.map((s) => s.t / 1000),
    t.map((s) => s.ok),
    t.map((s) => s.failed),
    // The same seconds as our clients counted their failures (refused connections included).
    t.map((s) => [...state.clients.values()].reduce((n, r) => n + (r.failedBySecond.get(s.t) ?? 0), 0)),
    t.map((s) => s.p50),
    t.map((s) => s.p95),
    t.map((s) => s.p99),
  ];
}

function drawEventMarks(u: uPlot): void {
  const ctx = u.ctx;
  const [min, max] = [u.scales.x?.min ?? 0, u.scales.x?.max ?? 0];
  ctx.save();
  ctx.lineWidth = 1.5 * devicePixelRatio;
  for (const e of state.events) {
    const color = marked[e.type];
    const t = Date.parse(e.time) / 1000;
    if (!color || t < min || t > max) continue;
    const x = Math.round(u.valToPos(t, "x", true));
    ctx.strokeStyle = color;
    ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
  }
  ctx.restore();
}

/** The last ten seconds in words, above the chart. */
function countTraffic(samples: TrafficSample[]): void {
  for (const x of samples) {
    if (x.t <= state.counted.lastT) continue;
    state.counted.okTotal += x.ok;
    state.counted.failedTotal += x.failed;
    state.counted.lastT = x.t;
  }
}

function renderTrafficSummary(): void {
  const last = state.traffic.slice(-10);
  const ok = last.reduce((n, x) => n + x.ok, 0);
  const failed = last.reduce((n, x) => n + x.failed, 0);
  const p99 = Math.max(0, ...last.map((x) => x.p99 ?? 0));
  const summary = $("traffic-summary");
  summary.dataset.ok = String(ok);
  summary.dataset.failed = String(failed);
  summary.dataset.okTotal = String(state.counted.okTotal);
  summary.dataset.failedTotal = String(state.counted.failedTotal);
  // Counted where the requests arrive (the title says where): a connection refused before any
  // balancer (a region down, clients still sent there by DNS) never reaches one. Our clients count
  // those themselves: their figures are below, and on the chart as "failed/s at clients".
  summary.textContent = `last 10 s: ${ok} successful, ${failed} failed, worst p99 ${p99.toFixed(1)} ms, as they arrived here (a connection refused before: counted by the clients, below)`;
}

function renderChart(): void {
  renderTrafficSummary();
  const container = $("chart");
  if (!plot) {
    plot = new uPlot(
      {
        width: Math.max(300, container.clientWidth - 4),
        height: 300,
        scales: {
          x: { time: true },
          rps: { auto: true, range: (_u, _min, max) => [0, Math.max(5, max)] },
          ms: { auto: true, range: (_u, _min, max) => [0, Math.max(1, max ?? 1)] },
        },
        axes: [
          // Time labels as h:m:s, at least 90 px apart: uPlot's default spacing let them overlap.
          { space: 90, values: "{HH}:{mm}:{ss}" },
          { scale: "rps", label: "requests/s" },
          { scale: "ms", side: 1, label: "latency (ms)", grid: { show: false } },
        ],
        series: [
          {},
          {
            label: "successful/s",
            points: { show: false },
            scale: "rps",
            stroke: "#16a34a",
            fill: "rgba(22,163,74,0.12)",
            width: 2,
          },
          {
            label: "failed/s",
            points: { show: false },
            scale: "rps",
            stroke: "#dc2626",
            fill: "rgba(220,38,38,0.2)",
            width: 2,
          },
          {
            label: "failed/s at clients",
            points: { show: false },
            scale: "rps",
            stroke: "#7f1d1d",
            dash: [6, 4],
            width: 2,
          },
          { label: "p50 ms", points: { show: false }, scale: "ms", stroke: "#1d4ed8", width: 1 },
          { label: "p95 ms", points: { show: false }, scale: "ms", stroke: "#f59e0b", width: 1 },
          { label: "p99 ms", points: { show: false }, scale: "ms", stroke: "#7c2d12", width: 1 },
        ],
        hooks: { draw: [drawEventMarks] },
        cursor: { points: { show: false } },
      },
      chartData(),
      container,
    );
    // For the browser tests (the axis is drawn on a canvas: they measure its labels through it).
    (container as HTMLElement & { uplot?: uPlot }).uplot = plot;
    new ResizeObserver(() =>
      plot?.setSize({ width: Math.max(300, container.clientWidth - 4), height: 300 }),
    ).observe(container);
  } else plot.setData(chartData());
}

// Drills ----------------------------------------------------------------------------------------

async function startDrill(name: string): Promise<void> {
  if (!window.confirm(`Run the ${name} drill on this stack? It breaks the stack on purpose, under traffic.`))
    return;
  const res = await api(`/drills/${name}`, { method: "POST" });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: string };
    $("drill-run").replaceChildren(el("p", { class: "badge bad" }, body.error ?? `refused (${res.status})`));
  }
}

/**
 * A link that opens a report in a new tab. The tab cannot send the token, so the page asks (with
 * it) for a one-time URL and sends the tab there.
 */
function reportLink(url: string, text: string, id?: string): HTMLElement {
  const a = el("a", { href: url, ...(id ? { id } : {}) }, text);
  a.addEventListener("click", (event) => {
    event.preventDefault();
    const tab = window.open("about:blank", "_blank");
    void api(`${url}/ticket`, { method: "POST" })
      .then(async (res) => {
        const body = (await res.json()) as { url?: string; error?: string };
        if (!tab) return;
        tab.opener = null;
        if (body.url) tab.location.href = body.url;
        else tab.close();
      })
      .catch(() => tab?.close());
  });
  return a;
}

function renderDrills(): void {
  const d = state.drills;
  if (!d) return;
  const running = d.current?.state === "running";
  $("drill-list").replaceChildren(
    ...d.available.map((x) => {
      const button = el("button", { type: "button", "data-drill": x.name }, "Run…") as HTMLButtonElement;
      button.disabled = running;
      button.addEventListener("click", () => void startDrill(x.name));
      return el(
        "div",
        { class: "drill" },
        el("div", {}, el("b", {}, x.name), el("p", {}, x.description)),
        button,
      );
    }),
  );
  const c = d.current;
  $("drill-run").replaceChildren(
    ...(c
      ? [
          el(
            "h3",
            {},
            `${c.drill}`,
            badge(c.state, c.state === "passed" ? "ok" : c.state === "running" ? "info" : "bad"),
            ...(c.report ? [reportLink(c.report, "open the report", "drill-report-link")] : []),
          ),
          el("pre", {}, [...c.progress, ...(c.error ? [`error: ${c.error}`] : [])].join("\n") || "starting…"),
        ]
      : []),
  );
  $("reports").replaceChildren(
    ...(d.reports.length ? [el("h4", {}, "Reports")] : []),
    ...d.reports.slice(0, 8).map((r) => el("div", {}, reportLink(r.url, r.name))),
  );
}

// Stream ----------------------------------------------------------------------------------------

let source: EventSource | undefined;

function showConnection(state: "live" | "reconnecting" | "logged-out" | "closed", text: string): void {
  const connection = $("connection");
  connection.dataset.state = state;
  connection.textContent = text;
}

function connect(): void {
  if (!token) {
    showConnection("logged-out", "not logged in: open the URL `stayup status` prints");
    return;
  }
  // EventSource cannot send a header: this one (the `eventsource` package) runs over fetch, so
  // the token goes as Authorization; it reconnects by itself and sends Last-Event-ID.
  source = new EventSource("/dashboard/stream", {
    fetch: (url, init) =>
      fetch(url, {
        ...init,
        credentials: "omit",
        headers: { ...init.headers, authorization: `Bearer ${token}` },
      }),
  });
  source.addEventListener("open", () => showConnection("live", "live"));
  source.addEventListener("error", (event) => {
    if (source?.readyState !== EventSource.CLOSED) {
      showConnection("reconnecting", "reconnecting…");
      return;
    }
    // Refused: a wrong token stays wrong; anything else (429: too many streams) is tried again.
    if (event.code === 401) {
      showConnection("logged-out", "logged out: open the URL `stayup status` prints");
      return;
    }
    showConnection("closed", `disconnected (${event.code ?? event.message ?? "error"}), retrying…`);
    setTimeout(connect, 5000);
  });
  source.addEventListener("hello", (m) => {
    const hello = JSON.parse((m as MessageEvent<string>).data) as {
      traffic: TrafficSample[];
      drills: DrillsState;
      status: StackStatus;
    };
    state.traffic = hello.traffic.slice(-windowSeconds);
    countTraffic(hello.traffic);
    state.drills = hello.drills;
    state.status = hello.status;
    renderTopology();
    renderClients();
    renderChart();
    renderDrills();
  });
  source.addEventListener("stack-event", (m) => {
    addEvent(JSON.parse((m as MessageEvent<string>).data) as TimedStackEvent);
  });
  source.addEventListener("status", (m) => {
    state.status = JSON.parse((m as MessageEvent<string>).data) as StackStatus;
    renderTopology();
  });
  source.addEventListener("traffic", (m) => {
    const samples = JSON.parse((m as MessageEvent<string>).data) as TrafficSample[];
    countTraffic(samples);
    state.traffic.push(...samples);
    if (state.traffic.length > windowSeconds) state.traffic.splice(0, state.traffic.length - windowSeconds);
    renderChart();
  });
  source.addEventListener("drill", (m) => {
    const run = JSON.parse((m as MessageEvent<string>).data) as DrillRunState;
    if (!state.drills) return;
    state.drills.current = run;
    if (run.report && !state.drills.reports.some((r) => r.url === run.report)) {
      state.drills.reports.unshift({
        name: run.report.split("/").pop() ?? run.report,
        url: run.report,
        time: new Date().toISOString(),
      });
    }
    renderDrills();
  });
}

connect();
