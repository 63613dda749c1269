/** Every value put into the page goes through this: labels, errors and even the Host header are untrusted. */
export function escapeHtml(value) {
    return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
/** `42 s`, `7 min`, `3 h 12 min`, `2 d 5 h`: uptime as a person reads it. */
export function humanDuration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60)
        return `${s} s`;
    const min = Math.floor(s / 60) % 60;
    const h = Math.floor(s / 3600) % 24;
    const d = Math.floor(s / 86_400);
    if (s < 3600)
        return `${min} min`;
    if (d === 0)
        return `${h} h ${min} min`;
    return `${d} d ${h} h`;
}
const INTEGER = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
function count(n) {
    return escapeHtml(INTEGER.format(n));
}
/** Colour per known state; an unknown state gets none rather than a class built from data. */
const STATE_CLASS = new Map([
    ['healthy', 'ok'],
    ['cooling', 'warn'],
    ['exhausted', 'bad'],
    ['invalid', 'bad'],
]);
const CSS = `
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#5b6470;--bg:#f6f7f9;--card:#fff;--line:#dde1e6;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#8d96a0;--bg:#0d1117;--card:#161b22;--line:#30363d;--ok:#3fb950;--warn:#d29922;--bad:#f85149}}
*{box-sizing:border-box}
body{margin:0;padding:2rem 1rem;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:56rem;margin:0 auto}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.5rem 1rem;margin-bottom:1.5rem}
h1{margin:0;font-size:1.5rem}
h2{margin:0 0 .75rem;font-size:1rem}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem 1.25rem;margin-bottom:1rem}
.muted{color:var(--muted)}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{margin:.5rem 0 0;padding:.75rem;overflow-x:auto;background:var(--bg);border:1px solid var(--line);border-radius:6px}
dl{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.75rem;margin:0}
dt{color:var(--muted);font-size:.85rem}
dd{margin:0;font-size:1.25rem;font-variant-numeric:tabular-nums}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.4rem .5rem;border-top:1px solid var(--line);vertical-align:top}
th{border-top:0;color:var(--muted);font-weight:500;font-size:.85rem}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}
`;
function upstreamRow(k) {
    const cls = STATE_CLASS.get(k.state);
    const cooling = k.cool_until ? `<br><span class="muted">until ${escapeHtml(k.cool_until)}</span>` : '';
    const lastError = k.last_error
        ? `${escapeHtml(k.last_error)}${k.last_error_at ? `<br><span class="muted">${escapeHtml(k.last_error_at)}</span>` : ''}`
        : '<span class="muted">none</span>';
    return (`<tr><td>${escapeHtml(k.id)}<br><code>${escapeHtml(k.masked)}</code></td>` +
        `<td${cls ? ` class="${cls}"` : ''}>${escapeHtml(k.state)}${cooling}</td>` +
        `<td class="n">${count(k.served)}</td><td class="n">${count(k.failures)}</td><td>${lastError}</td></tr>`);
}
/**
 * The status page as one self-contained document: inline CSS, no scripts, no external assets, so
 * it works offline and under a `default-src 'none'` policy. Pure: `now` (epoch ms) gives uptime and date.
 */
export function statusHtml(data, baseUrl, now) {
    const uptime = humanDuration((now - data.startedAt) / 1000);
    const day = new Date(now).toISOString().slice(0, 10);
    const url = escapeHtml(baseUrl);
    const rows = data.pool.length
        ? data.pool.map(upstreamRow).join('\n')
        : '<tr><td colspan="5" class="muted">No upstream keys configured.</td></tr>';
    const t = data.today;
    return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Keyward status</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header><h1>Keyward</h1><span class="muted">version ${escapeHtml(data.version)} · up ${escapeHtml(uptime)}</span></header>

<section>
<h2>Connect</h2>
<p>Base URL for OpenAI SDKs: <code>${url}</code></p>
<pre># Every OpenAI SDK reads these two variables
export OPENAI_BASE_URL="${url}"
export OPENAI_API_KEY="&lt;your Keyward key&gt;"</pre>
<pre>from openai import OpenAI
client = OpenAI(base_url="${url}", api_key="&lt;your Keyward key&gt;")</pre>
<pre>import OpenAI from "openai";
const client = new OpenAI({ baseURL: "${url}", apiKey: "&lt;your Keyward key&gt;" });</pre>
</section>

<section>
<h2>Proxy keys</h2>
<dl>
<div><dt>Active</dt><dd>${count(data.keys.active)}</dd></div>
<div><dt>Disabled</dt><dd>${count(data.keys.disabled)}</dd></div>
<div><dt>Expired</dt><dd>${count(data.keys.expired)}</dd></div>
</dl>
</section>

<section>
<h2>Upstream keys</h2>
<table>
<thead><tr><th>Key</th><th>State</th><th>Served</th><th>Failures</th><th>Last error</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</section>

<section>
<h2>Today <span class="muted">(UTC, ${escapeHtml(day)})</span></h2>
<dl>
<div><dt>Requests</dt><dd>${count(t.requests)}</dd></div>
<div><dt>Input tokens</dt><dd>${count(t.input_tokens)}</dd></div>
<div><dt>Output tokens</dt><dd>${count(t.output_tokens)}</dd></div>
<div><dt>Total tokens</dt><dd>${count(t.total_tokens)}</dd></div>
<div><dt>Cost</dt><dd>$${escapeHtml(t.cost_usd.toFixed(6))}</dd></div>
</dl>
</section>
</main>
</body>
</html>
`;
}
/** The 401 a browser gets with the Basic challenge: says what to type into the prompt it shows. */
export const AUTH_REQUIRED_HTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Keyward: key required</title></head>
<body style="font:15px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem">
<h1 style="font-size:1.25rem">This status page needs a Keyward key</h1>
<p>Reload the page and, when the browser asks, leave the user name blank and enter your proxy key as the password.</p>
</body>
</html>
`;
//# sourceMappingURL=statusHtml.js.map