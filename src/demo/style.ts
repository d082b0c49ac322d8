/** `GET /demo/style.css`: system fonts, no external assets. */
export const DEMO_STYLE = `:root {
  color-scheme: light;
  --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --card: #ffffff; --page: #f4f6f8;
  --accent: #0b63c5; --danger: #b42318;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink); }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.top { padding: 1.25rem 1.5rem 0.5rem; }
.top h1 { margin: 0 0 0.25rem; font-size: 1.4rem; }
.top p { margin: 0; color: var(--muted); max-width: 60rem; }
.badge { font-size: 0.7rem; vertical-align: middle; padding: 0.15rem 0.5rem; border-radius: 1rem; background: #fff4d6; color: #7a4d00; border: 1px solid #f1d38a; }
.layout { display: grid; gap: 1rem; padding: 1rem 1.5rem; grid-template-columns: minmax(20rem, 27rem) 1fr; align-items: start; }
@media (max-width: 60rem) { .layout { grid-template-columns: 1fr; } }
.side { display: grid; gap: 1rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 0.6rem; padding: 0.9rem 1rem; }
.card h2 { margin: 0 0 0.6rem; font-size: 1rem; }
label { display: block; font-weight: 600; margin-bottom: 0.3rem; }
.row { display: flex; gap: 0.5rem; flex-wrap: wrap; }
input, select { flex: 1 1 8rem; font: inherit; padding: 0.4rem 0.55rem; border: 1px solid var(--line); border-radius: 0.4rem; background: #fff; color: inherit; }
button { font: inherit; padding: 0.4rem 0.9rem; border-radius: 0.4rem; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button:disabled { opacity: 0.5; cursor: not-allowed; }
:focus-visible { outline: 3px solid #7cb4f5; outline-offset: 1px; }
.hint { color: var(--muted); font-size: 0.85rem; margin: 0.5rem 0 0; }
.status { margin: 0.6rem 0 0; font-weight: 600; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.3rem 0.9rem; margin: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.countdown { font-variant-numeric: tabular-nums; font-weight: 700; font-size: 1.1rem; margin-right: 0.5rem; }
progress { width: 9rem; vertical-align: middle; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); font-size: 0.85rem; padding-bottom: 0.3rem; }
th code.headers { display: block; font-weight: 400; color: var(--muted); }
th, td { text-align: left; padding: 0.3rem 0.4rem; border-top: 1px solid var(--line); }
thead th { border-top: 0; color: var(--muted); font-weight: 600; font-size: 0.85rem; }
.errors { list-style: none; margin: 0; padding: 0; display: grid; gap: 0.4rem; }
.errors li { border-left: 3px solid var(--danger); padding: 0.2rem 0.5rem; background: #fef3f2; }
.errors code { color: var(--danger); font-weight: 700; margin-right: 0.4rem; }
.errors time, .feed time { color: var(--muted); font-size: 0.8rem; margin-right: 0.5rem; font-variant-numeric: tabular-nums; }
.feed h2 .count { font-size: 0.8rem; font-weight: 600; padding: 0.05rem 0.5rem; border-radius: 1rem; background: #eef2f6; color: var(--muted); }
.feed ol { list-style: none; margin: 0.6rem 0 0; padding: 0; max-height: 75vh; overflow-y: auto; }
.feed li { display: grid; grid-template-columns: 4.75rem 5.75rem 1fr; align-items: baseline; padding: 0.3rem 0.2rem; border-top: 1px solid #eef0f2; }
.tag { font-size: 0.75rem; font-weight: 700; text-transform: uppercase; letter-spacing: 0.03em; }
[data-event="roomInfo"] .tag { color: #6639ba; }
[data-event="chat"] .tag { color: #0b63c5; }
[data-event="like"] .tag { color: #b4235a; }
[data-event="gift"] .tag { color: #9a5b00; }
[data-event="member"] .tag { color: #1a7f37; }
[data-event="system"] { color: var(--muted); font-style: italic; }
[data-event="system"] .tag { color: var(--muted); }
footer { padding: 0 1.5rem 1.5rem; color: var(--muted); font-size: 0.85rem; }
`
