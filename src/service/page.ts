// The status page: one self-contained HTML document whose small script renders /api/builds and
// refreshes itself every few seconds. Text goes into the DOM as text nodes only (never as HTML),
// and the page runs under a strict Content-Security-Policy with a per-response nonce.

const REFRESH_MS = 3000;

const CSS = `
:root { --fg:#1d2330; --muted:#5e6778; --line:#e3e6ec; --bg:#f6f7f9; --card:#fff; --ok:#1a7f37; --bad:#cf222e; --warn:#9a6700; --run:#0969da; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header { background:#1d2330; color:#fff; padding:14px 24px; display:flex; gap:24px; align-items:baseline; flex-wrap:wrap; }
header h1 { margin:0; font-size:20px; letter-spacing:.5px; }
header .meta { color:#c9d1d9; font-size:13px; display:flex; gap:18px; flex-wrap:wrap; }
main { padding:18px 24px; max-width:1280px; }
h2 { font-size:15px; text-transform:uppercase; letter-spacing:.6px; color:var(--muted); margin:22px 0 10px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; margin-bottom:14px; }
.row { display:flex; gap:14px; align-items:center; flex-wrap:wrap; }
.title { font-weight:600; font-size:15px; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.muted { color:var(--muted); }
.badge { display:inline-block; border-radius:10px; padding:1px 9px; font-size:12px; font-weight:600; border:1px solid currentColor; white-space:nowrap; }
.s-succeeded,.s-fetched,.s-uploaded,.s-passed { color:var(--ok); }
.s-failed,.s-error,.s-cancelled,.s-interrupted { color:var(--bad); }
.s-partial,.s-skipped,.s-queued,.s-pending { color:var(--warn); }
.s-running,.s-building,.s-fetching,.s-uploading,.s-planned,.s-built { color:var(--run); }
table { border-collapse:collapse; width:100%; margin-top:10px; font-size:13px; }
th { text-align:left; color:var(--muted); font-weight:600; border-bottom:1px solid var(--line); padding:5px 8px; }
td { border-bottom:1px solid var(--line); padding:5px 8px; vertical-align:top; }
tr:last-child td { border-bottom:none; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; }
code { overflow-wrap:anywhere; }
td.mono { white-space:nowrap; }
button.copy { font-size:11px; padding:1px 7px; margin-left:6px; border:1px solid var(--line); background:#f3f4f6; border-radius:5px; cursor:pointer; }
button.copy:hover { background:#e7e9ee; }
a { color:var(--run); text-decoration:none; } a:hover { text-decoration:underline; }
ul.reasons { margin:6px 0 0; padding-left:18px; color:var(--muted); }
.images th, .images td { background:#fbfdfb; }
.sub { font-size:12px; font-weight:600; color:var(--muted); margin-top:12px; }
#err { color:var(--bad); }
`;

// Plain ES2017 without template literals (this file is itself a template literal).
const SCRIPT = `
(function () {
  'use strict';
  var REFRESH = ${REFRESH_MS};
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (attrs[k] === undefined || attrs[k] === null) continue;
      if (k === 'class') el.className = attrs[k]; else if (k === 'text') el.textContent = attrs[k]; else el.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === undefined || c === null || c === false) continue;
      if (Array.isArray(c)) c.forEach(function (x) { if (x) el.appendChild(typeof x === 'string' ? document.createTextNode(x) : x); });
      else el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return el;
  }
  function badge(status, text) { return h('span', { class: 'badge s-' + status, 'data-status': status, text: text || status }); }
  function when(iso) { if (!iso) return ''; var d = new Date(iso); return d.toLocaleString(); }
  function secs(s) {
    if (s === undefined || s === null) return '';
    s = Math.round(s);
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  }
  function size(n) { var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; var i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; } return n.toFixed(i ? 1 : 0) + ' ' + u[i]; }
  function copyButton(value) { return h('button', { class: 'copy', type: 'button', 'data-copy': value, title: 'copy ' + value, text: 'copy' }); }
  function copyable(value, shown) { return h('span', null, h('code', { text: shown || value }), copyButton(value)); }
  function reasons(list) {
    if (!list || !list.length) return null;
    return h('ul', { class: 'reasons' }, list.map(function (r) { return h('li', null, h('b', { text: r.kind }), ' ' + r.detail + ' \\u00b7 ' + when(r.at)); }));
  }
  function runCard(run, label) {
    return h('div', { class: 'card', id: 'run-' + run.id, 'data-run': run.id },
      h('div', { class: 'row' }, h('span', { class: 'title', text: label }), badge(run.status, run.status_text),
        run.build_id ? h('span', { class: 'mono', text: 'build ' + run.build_id }) : null,
        h('span', { class: 'muted', text: run.started_at ? 'started ' + when(run.started_at) : 'queued ' + when(run.queued_at) })),
      reasons(run.reasons));
  }
  function smokeCell(a) {
    if (!a.smoke) return h('span', { class: 'muted', text: '-' });
    return a.smoke.map(function (r) {
      return h('div', { title: r.reason || '' }, h('span', { class: 'mono', text: r.types.join('+') + ' ' }), badge(r.status), r.seconds !== undefined ? h('span', { class: 'muted', text: ' ' + secs(r.seconds) + (r.accel ? ' ' + r.accel : '') }) : null);
    }).concat(a.smoke_log ? [h('a', { href: a.smoke_log, target: '_blank', rel: 'noopener', text: 'smoke.log' })] : []);
  }
  function archTable(b) {
    if (!b.arches.length) return null;
    return h('table', { class: 'arches' },
      h('thead', null, h('tr', null, ['Arch', 'Status', 'Worker', 'Image name', 'Build', 'Fetch', 'Smoke', 'Targets', 'Log'].map(function (t) { return h('th', { text: t }); }))),
      h('tbody', null, b.arches.map(function (a) {
        return h('tr', { 'data-arch': a.arch },
          h('td', { class: 'mono', text: a.arch }),
          h('td', null, badge(a.step), a.error ? h('div', { class: 'muted', text: a.error }) : null),
          h('td', { class: 'mono', text: a.worker || '' }),
          h('td', { class: 'mono', text: a.image_name }),
          h('td', { text: secs(a.build_s) }),
          h('td', { text: secs(a.fetch_s) }),
          h('td', null, smokeCell(a)),
          h('td', null, a.uploads.length ? a.uploads.map(function (u) { return h('div', { title: u.error || '' }, h('span', { class: 'mono', text: u.target + ' ' }), badge(u.step)); }) : h('span', { class: 'muted', text: 'none' })),
          h('td', null, h('a', { href: a.log, target: '_blank', rel: 'noopener', text: 'build.log' })));
      })));
  }
  function imageTable(b) {
    var fresh = b.images.filter(function (i) { return !i.existing; });
    if (!fresh.length) return null;
    return [h('div', { class: 'sub', text: 'New images' }),
      h('table', { class: 'images' },
        h('thead', null, h('tr', null, ['Target', 'Location', 'Arch', 'Name', 'Image id', 'Artifact id'].map(function (t) { return h('th', { text: t }); }))),
        h('tbody', null, fresh.map(function (i) {
          return h('tr', { 'data-image': i.id },
            h('td', { class: 'mono', text: i.target }), h('td', { class: 'mono', text: i.location }), h('td', { class: 'mono', text: i.arch }),
            h('td', null, copyable(i.name)), h('td', null, copyable(i.id)), h('td', null, copyable(i.artifact_id)));
        })))];
  }
  function artifactTable(b) {
    if (!b.artifacts.length) return null;
    return [h('div', { class: 'sub', text: 'Disk images' }),
      h('table', { class: 'artifacts' },
        h('thead', null, h('tr', null, ['Arch', 'Type', 'Name', 'Size', 'SHA-256'].map(function (t) { return h('th', { text: t }); }))),
        h('tbody', null, b.artifacts.map(function (a) {
          return h('tr', { 'data-artifact': a.imageName },
            h('td', { class: 'mono', text: a.arch }), h('td', { class: 'mono', text: a.type }), h('td', null, copyable(a.imageName)),
            h('td', { text: size(a.size) }), h('td', null, copyable(a.sha256, a.sha256.slice(0, 16) + '\\u2026')));
        })))];
  }
  function buildCard(b) {
    return h('div', { class: 'card build', id: 'build-' + b.build_id, 'data-build': b.build_id },
      h('div', { class: 'row' },
        h('span', { class: 'title', text: b.build_id }), badge(b.status),
        h('span', { text: 'trigger: ' + (b.trigger || 'cli') }),
        h('span', { class: 'muted', text: when(b.started_at) }),
        b.duration_s !== undefined ? h('span', { class: 'muted', text: secs(b.duration_s) }) : null,
        b.commit ? h('span', { class: 'mono muted', text: 'commit ' + b.commit.slice(0, 12) }) : null,
        h('a', { href: b.manifest, target: '_blank', rel: 'noopener', text: 'manifest.json' })),
      reasons(b.reasons), archTable(b), imageTable(b), artifactTable(b));
  }
  function runsTable(runs) {
    if (!runs.length) return h('p', { class: 'muted', text: 'No runs yet.' });
    return h('table', { class: 'runs card' },
      h('thead', null, h('tr', null, ['Run', 'Status', 'Triggers', 'Queued', 'Build', 'Note'].map(function (t) { return h('th', { text: t }); }))),
      h('tbody', null, runs.map(function (r) {
        return h('tr', null, h('td', { class: 'mono', text: r.id }), h('td', null, badge(r.status, r.status_text)),
          h('td', { text: r.reasons.map(function (x) { return x.kind; }).join(', ') }), h('td', { text: when(r.queued_at) }),
          h('td', { class: 'mono', text: r.build_id || '' }), h('td', { class: 'muted', text: r.message || '' }));
      })));
  }
  function render(data) {
    var s = data.service;
    var meta = document.getElementById('meta');
    meta.replaceChildren.apply(meta, [
      h('span', { text: 'inventory ' + s.inventory }),
      h('span', { text: s.source.kind === 'git' ? 'source ' + s.source.url + ' @ ' + s.source.branch + (s.source.commit ? ' (' + s.source.commit.slice(0, 12) + ')' : '') : s.source.kind === 'image' ? 'source image ' + s.source.image + (s.source.digest ? ' (' + s.source.digest.slice(0, 19) + ')' : '') : 'source: inventory path' }),
      s.schedule ? h('span', { text: 'schedule ' + s.schedule.pattern + (s.schedule.next ? ', next ' + when(s.schedule.next) : '') }) : null,
      s.inactivity ? h('span', { text: 'inactivity ' + secs(s.inactivity.after_s) + (s.inactivity.due ? ', due ' + when(s.inactivity.due) : '') }) : null,
      h('span', { id: 'updated', text: 'updated ' + new Date().toLocaleTimeString() })].filter(Boolean));
    var now = document.getElementById('now');
    var cards = [];
    if (data.running) cards.push(runCard(data.running, 'Running'));
    if (data.pending) cards.push(runCard(data.pending, 'Next'));
    if (!cards.length) cards.push(h('p', { class: 'muted', text: s.accepting ? 'Idle: no build running or queued.' : 'Stopping.' }));
    now.replaceChildren.apply(now, cards);
    var builds = document.getElementById('builds');
    builds.replaceChildren.apply(builds, data.builds.length ? data.builds.map(buildCard) : [h('p', { class: 'muted', text: 'No builds yet.' })]);
    var runs = document.getElementById('runs');
    runs.replaceChildren(runsTable(data.runs));
  }
  function copy(value, btn) {
    function done() { btn.textContent = 'copied'; setTimeout(function () { btn.textContent = 'copy'; }, 1500); }
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(value).then(done, fallback); } else fallback();
    function fallback() {
      var t = document.createElement('textarea'); t.value = value; t.setAttribute('readonly', ''); t.style.position = 'fixed'; t.style.opacity = '0';
      document.body.appendChild(t); t.select();
      try { document.execCommand('copy'); done(); } catch (e) { btn.textContent = 'select it'; }
      document.body.removeChild(t);
    }
  }
  document.addEventListener('click', function (ev) {
    var btn = ev.target.closest && ev.target.closest('button.copy');
    if (btn) copy(btn.getAttribute('data-copy'), btn);
  });
  var err = document.getElementById('err');
  function refresh() {
    fetch('/api/builds', { cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (data) { err.textContent = ''; render(data); document.body.setAttribute('data-loaded', 'true'); }, function (e) {
      err.textContent = 'cannot reach the service (' + e.message + '); retrying';
    }).then(function () { setTimeout(refresh, REFRESH); });
  }
  refresh();
})();
`;

export function pageHtml(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>farm</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${CSS}</style>
</head>
<body>
<header><h1>farm</h1><div class="meta" id="meta">loading…</div></header>
<main>
<div id="err"></div>
<h2>Now</h2>
<div id="now"><p class="muted">loading…</p></div>
<h2>Builds</h2>
<div id="builds"></div>
<h2>Recent runs</h2>
<div id="runs"></div>
</main>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}
