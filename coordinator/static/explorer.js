// Shared by the explorer's pages: amounts, escaping, links, and charts (Chart.js, vendored; no network needed).
const TOKEN = 10n ** 18n;
const tokens = (s) => { const v = BigInt(s); return (v / TOKEN).toString() + (v % TOKEN ? "." + (v % TOKEN).toString().padStart(18, "0").replace(/0+$/, "") : ""); };
const tokenFloat = (s) => Number(BigInt(s) * 1000000n / TOKEN) / 1e6;
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
const short = (a) => esc(a.slice(0, 8) + "…" + a.slice(-4));
const volunteerLink = (a) => `<a href="/volunteer/${esc(a)}" title="${esc(a)}"><code>${short(a)}</code></a>`;
const bountyLink = (id) => `<a href="/bounty/${id}">bounty ${id}</a>`;
const KIND_COLORS = {"task reward": "#2a7", "verifier fee": "#36c", "referee fee": "#a6c", "challenge": "#c63", "compensation": "#c9a227", "other": "#999"};

// A line chart with titled axes; `series` is [{label, points: [{x, y}], color}]. Static: no animation, so what a
// screenshot or a test sees is the finished chart. The canvas records how many points it drew.
function lineChart(canvas, series, xTitle, yTitle, stepped = false, wholeX = false) {
  canvas.dataset.points = series.reduce((n, s) => n + s.points.length, 0);
  return new Chart(canvas, {
    type: "line",
    data: {datasets: series.map((s) => ({label: s.label, data: s.points, borderColor: s.color, backgroundColor: s.color, stepped, pointRadius: s.points.length > 40 ? 0 : 3, borderWidth: s.points.length > 40 ? 1.5 : 3}))},
    options: {
      animation: false, responsive: false, parsing: false,
      scales: {
        x: {type: "linear", title: {display: true, text: xTitle}, ticks: wholeX ? {stepSize: 1, precision: 0} : {}},
        y: {title: {display: true, text: yTitle}},
      },
      plugins: {legend: {display: series.length > 1}},
    },
  });
}

// Cumulative tokens over blocks, one series per payment kind.
function paymentSeries(payments) {
  const byKind = {};
  for (const p of payments) {
    const s = byKind[p.kind] || (byKind[p.kind] = {label: p.kind, points: [], total: 0, color: KIND_COLORS[p.kind] || "#999"});
    s.total += tokenFloat(p.amount);
    s.points.push({x: p.block, y: s.total});
  }
  return Object.values(byKind);
}

const SHARD_COLORS = ["#36c", "#2a7", "#c63", "#a6c", "#c93", "#399", "#c36", "#693"];

// Training loss per inner step of each accepted or pending commit, from its trace manifest: one series per shard,
// its rounds one after another on the x axis (round × steps per task + step).
function lossSeries(attempts) {
  const kept = attempts.filter((a) => a.losses && a.losses.length && (a.outcome === "accepted" || a.outcome === "pending"));
  const steps = Math.max(0, ...kept.map((a) => a.losses.length));
  const byShard = {};
  for (const a of kept) {
    const s = byShard[a.shard] || (byShard[a.shard] = {label: `shard ${a.shard}`, points: [], color: SHARD_COLORS[a.shard % SHARD_COLORS.length]});
    a.losses.forEach((y, i) => s.points.push({x: a.round * steps + i + 1, y}));
  }
  return Object.values(byShard).map((s) => ({...s, points: s.points.sort((p, q) => p.x - q.x)}));
}

// A bounty's held-out score over its rounds (the round each model started; the last is the final model).
function metricSeries(b) {
  const scored = b.round_history.filter((r) => r.metric !== null);
  const name = scored.length ? scored[0].metric_name : "score";
  return [name, [{label: name, color: "#36c", points: scored.map((r) => ({x: r.final ? b.rounds : r.round, y: r.metric}))}]];
}

// What each event does to a bounty's escrow (contracts/base/MarketState.sol).
const ESCROW_WHY = {
  BountyPosted: "the poster funded it",
  TaskAccepted: "a task's reward paid out of it",
  RewardCredited: "verifier fees of a passed check paid out of it (a failed check's fees come from the stake)",
  TaskSlashed: "the slashed stake, less the failed check's fees and the challenger's share, funds the redo",
  GameEnded: "a bisection game ended: the loser's stake, less the winner's prize",
  ChallengerSlashed: "a challenger lost its game: its stake",
  LeaseExpired: "the expired lease's penalty",
  EscrowRefunded: "the poster took back what was left",
};
