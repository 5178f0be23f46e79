/** The dashboard's HTML shell; the script fills it from the event stream. */
export const dashboardPage = () => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stayup dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/app.css">
</head>
<body>
<header>
  <h1>stayup</h1>
  <span id="stack-name"></span>
  <span id="stack-version" class="badge" hidden></span>
  <span id="connection" class="badge" data-state="connecting">connecting…</span>
</header>
<main>
  <section id="topology" aria-label="topology"><h2>Topology</h2><div id="faults"></div><div id="regions"></div><div id="redis"></div></section>
  <section id="traffic" aria-label="traffic"><h2 id="traffic-title">Traffic through the load balancers</h2><p id="traffic-summary"></p><div id="client-traffic"></div><div id="chart"></div>
    <p class="legend">dashed lines: <span class="mark-terminated">instance terminated</span> · <span class="mark-unhealthy">target unhealthy</span> · <span class="mark-healthy">target healthy</span> · <span class="mark-capacity">capacity changed</span> · <span class="mark-redis-failover">Redis failover</span> · <span class="mark-alarm">alarm</span> · <span class="mark-dns-failover">DNS failover/failback</span> · <span class="mark-roll-started">roll started</span> · <span class="mark-roll-completed">roll completed</span> · <span class="mark-roll-rolled-back">roll rolled back</span></p></section>
  <section id="drills" aria-label="drills"><h2>Drills</h2><div id="drill-list"></div><div id="drill-run"></div><div id="reports"></div></section>
  <section id="events" aria-label="events"><h2>Events</h2><ol id="event-list"></ol></section>
</main>
<script src="/dashboard/app.js"></script>
</body>
</html>
`;
