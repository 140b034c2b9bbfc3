// rlpost console: polls /api/view, draws one card per robot, sends button presses to /api/command.
// The token travels in an HttpOnly cookie set when the page was opened with ?token=...
"use strict";

const cards = new Map();  // robot id -> {el, seq}
let refreshMs = 1000;

function fmt(v, digits = 2) {
  return v === null || v === undefined ? "–" : Number(v).toFixed(digits);
}

async function send(robot, kind) {
  const out = document.getElementById("last-result");
  out.textContent = `${kind} → ${robot === "*" ? "all" : robot} …`;
  try {
    const r = await fetch("/api/command", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({robot, kind}),
    });
    if (!r.ok) { out.textContent = `${kind}: ${r.status} ${await r.text()}`; return; }
    const bad = (await r.json()).results.filter(x => !x.ok);
    out.textContent = bad.length ? `${kind}: ` + bad.map(x => `${x.robot_id}: ${x.error}`).join("; ")
                                 : `${kind} → ${robot === "*" ? "all" : robot}: ok`;
  } catch (e) {
    out.textContent = `${kind}: ${e}`;
  }
}

document.addEventListener("click", ev => {
  const b = ev.target.closest("button[data-kind]");
  if (b) send(b.dataset.robot, b.dataset.kind);
});

function card(r) {
  let c = cards.get(r.robot_id);
  if (!c) {
    const el = document.getElementById("robot-card").content.firstElementChild.cloneNode(true);
    el.dataset.robot = r.robot_id;
    el.querySelector(".rid").textContent = r.robot_id;
    el.querySelectorAll("button").forEach(b => { b.dataset.robot = r.robot_id; });
    document.getElementById("robots").appendChild(el);
    c = {el, seq: -1};
    cards.set(r.robot_id, c);
  }
  const frames = c.el.querySelector(".frames");
  for (const cam of r.cameras) {  // cameras are known once the robot's first snapshot arrived
    if (frames.querySelector(`img[data-camera="${CSS.escape(cam)}"]`)) continue;
    const img = document.createElement("img");
    img.alt = `${r.robot_id} ${cam}`;
    img.dataset.camera = cam;
    frames.appendChild(img);
    c.seq = -1;
  }
  return c;
}

function drawRobot(r) {
  const c = card(r), el = c.el;
  el.className = `robot ${r.state}`;
  el.querySelector(".state").textContent = r.state;
  el.querySelector(".instruction").textContent = r.instruction || "";
  el.querySelector(".step").textContent = r.episode_id ? r.episode_step : "–";
  el.querySelector(".episodes").textContent = r.episodes;
  el.querySelector(".version").textContent = r.policy_version;
  const p = r.progress;
  el.querySelector(".bar").style.width = p === null ? "0" : `${Math.round(100 * p)}%`;
  el.querySelector(".ptext").textContent = p === null ? "progress —" : `progress ${fmt(p)}`;
  let err = el.querySelector(".error");
  if (r.error && !err) { err = document.createElement("div"); err.className = "error"; el.appendChild(err); }
  if (err) err.textContent = r.error;
  if (r.frame_seq >= 0 && r.frame_seq !== c.seq) {
    c.seq = r.frame_seq;
    el.querySelectorAll(".frames img").forEach(img => {
      img.src = `/api/frame/${encodeURIComponent(r.robot_id)}/${encodeURIComponent(img.dataset.camera)}?s=${r.frame_seq}`;
    });
  }
}

function drawSession(s) {
  document.getElementById("session-id").textContent = s.session_id;
  document.getElementById("stat-episodes").textContent = s.episodes;
  document.getElementById("stat-success").textContent =
    s.success_rate === null ? "–" : `${Math.round(100 * s.success_rate)}% of ${Math.min(s.episodes, s.recent)}`;
  document.getElementById("stat-interventions").textContent = fmt(s.interventions_per_episode);
  document.getElementById("stat-eph").textContent = fmt(s.episodes_per_hour, 0);
  document.getElementById("stat-learner").textContent = s.learner_step;
  document.getElementById("stat-head").textContent = `v${s.head_version}`;
  const ys = s.success_curve, n = ys.length;
  document.getElementById("success-line").setAttribute("points",
    ys.map((y, i) => `${n > 1 ? (200 * i) / (n - 1) : 0},${40 - 38 * y - 1}`).join(" "));
}

function drawAlerts(alerts) {
  const ul = document.getElementById("alerts");
  ul.replaceChildren();
  if (!alerts.length) { ul.innerHTML = '<li class="none">none</li>'; return; }
  for (const a of alerts.slice(0, 50)) {
    const li = document.createElement("li");
    li.className = a.kind;
    const t = new Date(a.last_t * 1000).toLocaleTimeString();
    li.textContent = `${t} ${a.robot_id}: ${a.text}${a.count > 1 ? ` (×${a.count})` : ""}`;
    ul.appendChild(li);
  }
}

async function refresh() {
  try {
    const r = await fetch("/api/view");
    if (r.ok) {
      const v = await r.json();
      refreshMs = 1000 * v.refresh_s;
      drawSession(v.session);
      v.robots.forEach(drawRobot);
      drawAlerts(v.alerts);
      document.body.dataset.loaded = "1";
    } else {
      document.getElementById("last-result").textContent = `view: ${r.status} ${await r.text()}`;
    }
  } catch (e) {
    document.getElementById("last-result").textContent = `view: ${e}`;
  }
  setTimeout(refresh, refreshMs);
}

refresh();
