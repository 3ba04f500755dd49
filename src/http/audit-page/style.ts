/** The page's only stylesheet, served from /audit/style.css so the CSP can forbid inline styles. */
export const STYLE = `
:root { --granted: #2e7d32; --denied: #c62828; --malformed: #ef6c00; --error: #6a1b9a; font-family: system-ui, sans-serif; color: #1b1b1b; }
body { margin: 0 auto; max-width: 76rem; padding: 1rem 1.5rem 3rem; }
header { display: flex; justify-content: space-between; align-items: baseline; border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
header h1 { font-size: 1.4rem; margin: .5rem 0; }
header form { display: inline; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
form.search { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); gap: .5rem 1rem; align-items: end; }
form.search label { display: flex; flex-direction: column; font-size: .8rem; color: #555; }
input, select, textarea, button { font: inherit; padding: .3rem .4rem; }
button { cursor: pointer; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #eee; vertical-align: top; overflow-wrap: anywhere; }
th { background: #f6f6f6; }
.decision { font-weight: 600; }
.decision-granted { color: var(--granted); } .decision-denied { color: var(--denied); }
.decision-malformed { color: var(--malformed); } .decision-error { color: var(--error); }
dl { display: grid; grid-template-columns: 14rem 1fr; gap: .3rem 1rem; font-size: .9rem; }
dt { color: #555; } dd { margin: 0; overflow-wrap: anywhere; }
pre { background: #f6f6f6; padding: .75rem; overflow-x: auto; font-size: .8rem; }
.chart { width: 100%; height: auto; }
.legend span { margin-right: 1rem; font-size: .8rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; vertical-align: middle; }
.swatch-granted { background: var(--granted); } .swatch-denied { background: var(--denied); }
.swatch-malformed { background: var(--malformed); } .swatch-error { background: var(--error); }
.notice { padding: .75rem 1rem; background: #fff4e5; border: 1px solid #f0c36d; }
.pager { margin-top: 1rem; }
textarea { width: 100%; min-height: 8rem; font-family: monospace; }
`;
