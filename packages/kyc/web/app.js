// KYC Governance Simulator — the page. Everything it shows comes from the server's real runs
// (packages/kyc/API.md) or is recomputed here from them (the verification, the step states, the
// running path variance); nothing is canned.
import { html, render, useEffect, useRef, useState } from '/assets/vendor.js';
import { api, subscribe } from './api.js';
import { Diagram, stepStates } from './diagram.js';
import { EntropyChart, HealthChart, SeriesChart } from './charts.js';
import { compareVerdicts, verifyFiles, verifyInBrowser } from './audit.js';

const RUNNING = new Set(['running', 'pending', 'queued', 'started']);

const short = (h) => (typeof h === 'string' && h.length > 16 ? `${h.slice(0, 12)}…` : (h ?? '—'));
const word = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function Hash({ value, label }) {
  return html`<code class="hash" title=${value ?? ''} aria-label=${label ? `${label} ${value ?? 'none'}` : undefined}
    >${short(value)}</code
  >`;
}

function Panel({ id, title, children, span = 4, testid }) {
  return html`<section class=${`panel span-${span}`} aria-labelledby=${`${id}-h`} data-testid=${testid ?? `panel-${id}`}>
    <h2 id=${`${id}-h`}>${title}</h2>
    ${children}
  </section>`;
}

function Badges({ meta }) {
  const m = meta.model ?? {};
  const f = meta.fixtures ?? {};
  return html`<ul class="badges" aria-label="What this simulator runs on">
    <li class=${`badge ${m.scripted ? 'warn' : 'info'}`} data-testid="badge-model">
      Model: ${m.label ?? m.kind ?? 'unknown'}${m.scripted ? ' — scripted, no LLM is called' : ''}
    </li>
    ${
      f.sanctions
        ? html`<li class="badge warn" data-testid="badge-fixtures">
          Illustrative fixtures: sanctions list ${f.sanctions.version} <${Hash} value=${f.sanctions.hash} />
          ${f.media ? html`, media corpus ${f.media.version} <${Hash} value=${f.media.hash} />` : null} — not real lists
        </li>`
        : null
    }
    <li class="badge warn">Risk weights and bands are illustrative, not regulatory guidance</li>
  </ul>`;
}

function CasePicker({ meta, choice, setChoice, customText, setCustomText, disabled }) {
  const selected = meta.cases.find((c) => c.id === choice);
  return html`<fieldset class="choices" disabled=${disabled}>
      <legend>Seeded cases</legend>
      ${meta.cases.map(
        (c) => html`<label class="choice" key=${c.id}>
          <input type="radio" name="case" value=${c.id} checked=${choice === c.id} onChange=${() => setChoice(c.id)} />
          <span><strong>${c.title}</strong> <small>(${c.id})</small></span>
        </label>`,
      )}
      <label class="choice">
        <input type="radio" name="case" value="__custom" checked=${choice === '__custom'} onChange=${() => setChoice('__custom')} />
        <span><strong>Your own case</strong> <small>(JSON, checked against the program's input schema)</small></span>
      </label>
    </fieldset>
    ${
      choice === '__custom'
        ? html`<label class="block" for="custom-input">Applicant input (JSON)</label>
          <textarea id="custom-input" rows="10" spellcheck="false" value=${customText} onInput=${(e) => setCustomText(e.currentTarget.value)}></textarea>
          <details><summary>Input schema</summary><pre class="json">${JSON.stringify(meta.input_schema, null, 2)}</pre></details>`
        : selected
          ? html`<div class="case-details" data-testid="case-details">
            <p>${selected.summary}</p>
            ${selected.expect ? html`<p class="small">What the program should do: ${selected.expect}</p>` : null}
            <details><summary>Input of this case</summary><pre class="json">${JSON.stringify(selected.input, null, 2)}</pre></details>
          </div>`
          : null
    }`;
}

function InjectorControls({ meta, injector, setInjector, disabled }) {
  const chosen = meta.injectors.find((i) => i.id === injector);
  return html`<fieldset class="choices" disabled=${disabled}>
      <legend>Injector (a real mutation of this run)</legend>
      <label class="choice">
        <input type="radio" name="injector" value="" checked=${injector === ''} onChange=${() => setInjector('')} />
        <span>None <small>(the case as it is)</small></span>
      </label>
      ${meta.injectors.map(
        (i) => html`<label class="choice" key=${i.id}>
          <input type="radio" name="injector" value=${i.id} checked=${injector === i.id} onChange=${() => setInjector(i.id)} />
          <span title=${i.id}>${i.title}</span>
        </label>`,
      )}
    </fieldset>
    ${
      chosen
        ? html`<div class="injector-details" data-testid="injector-details">
          <p>${chosen.description}</p>
          <dl class="kv">
            <dt>Injected at</dt><dd>${word(chosen.point)}</dd>
            <dt>Caught by</dt><dd>${word(chosen.detector)}</dd>
            ${chosen.evidence ? html`<dt>Evidence</dt><dd>${chosen.evidence}</dd>` : null}
            ${chosen.default_case ? html`<dt>Shown best on</dt><dd><code>${chosen.default_case}</code></dd>` : null}
          </dl>
        </div>`
        : null
    }`;
}

function Counters({ counters }) {
  if (!counters) return null;
  return html`<dl class="counters" data-testid="counters">
    ${Object.entries(counters).map(
      ([k, v]) =>
        html`<div key=${k} data-counter=${k}><dt>${k.replaceAll('_', ' ')}</dt><dd>${typeof v === 'object' ? JSON.stringify(v) : String(v)}</dd></div>`,
    )}
  </dl>`;
}

function detectorText(d) {
  if (!d) return null;
  if (typeof d === 'string') return d;
  return d.component ?? d.name ?? d.id ?? null;
}

function Detector({ d, fallback }) {
  if (!d) return html`<span data-testid="detector">${word(fallback)}</span>`;
  return html`<span data-testid="detector" data-caught=${String(!!d.caught)} data-reached=${String(!!d.reached)}>${detectorText(d)}</span>
    <span class=${`badge ${d.caught ? 'good-badge' : d.reached ? 'bad' : 'warn'}`} data-testid="caught">${d.caught ? 'caught' : d.reached ? 'NOT caught' : 'not reached'}</span>
    ${d.summary && d.summary !== `caught by ${d.component}` ? html`<div class="small" data-testid="detector-summary">${d.summary}</div>` : null}`;
}

function Evidence({ record }) {
  const d = record.detector;
  const rejected = record.rejected ?? [];
  const related = record.related ?? [];
  return html`<div data-testid="evidence">
    ${
      d && d.evidence && d.evidence.length
        ? html`<h3 class="sub">Evidence</h3>
          <ul class="evidence-list">
            ${d.evidence.map(
              (x, i) => html`<li key=${i}>
                ${x.code ? html`<code>${x.code}</code> ` : null}${x.what}${x.seq !== undefined ? html` <small>(event #${x.seq})</small>` : null}
                ${x.detail !== undefined ? html`<pre class="json small">${typeof x.detail === 'string' ? x.detail : JSON.stringify(x.detail, null, 2)}</pre>` : null}
              </li>`,
            )}
          </ul>`
        : null
    }
    ${
      rejected.length > 0
        ? html`<h3 class="sub">Rejected transitions and refusals</h3>
          <ul class="rejected" data-testid="rejected">
            ${rejected.map((r, i) =>
              r.source === 'preflight'
                ? html`<li key=${i}><span class="tag">pre-flight</span> <code>${r.code}</code>${r.path ? html` at <code>${r.path}</code>` : null}${r.line ? ` (line ${r.line}:${r.col ?? 0})` : ''}
                    <div>${r.message}</div></li>`
                : html`<li key=${i}><span class="tag">event #${word(r.seq)}</span> step <code>${word(r.step)}</code> asked for <code>${word(r.requested)}</code>${r.capability ? html` (capability <code>${r.capability}</code>)` : null};
                    refused by rule <code>${word(r.rule)}</code><div>${word(r.reason)}</div></li>`,
            )}
          </ul>`
        : html`<p data-testid="no-rejected">No rejected transitions in this run.</p>`
    }
    ${
      record.tampered
        ? html`<p class="bad" data-testid="tampered">Edited in storage: event #${record.tampered.seq}, <code>${record.tampered.path}</code>
          from <code>${JSON.stringify(record.tampered.from)}</code> to <code>${JSON.stringify(record.tampered.to)}</code></p>`
        : null
    }
    ${
      related.length
        ? html`<table class="nums" data-testid="related"><caption>Related runs</caption>
          <thead><tr><th scope="col">role</th><th scope="col">run</th><th scope="col">status</th><th scope="col">verify</th></tr></thead>
          <tbody>${related.map(
            (
              x,
            ) => html`<tr key=${x.run_id}><td>${x.role}</td><td><code>${short(x.run_id)}</code></td><td>${x.status}${x.outcome ? ` (${x.outcome})` : ''}</td>
            <td>${x.verify ? (x.verify.ok ? 'valid' : `${x.verify.code} at #${x.verify.first_bad_seq}`) : '—'}</td></tr>`,
          )}</tbody></table>`
        : null
    }
    ${record.notes && record.notes.length ? html`<ul class="small notes">${record.notes.map((n, i) => html`<li key=${i}>${n}</li>`)}</ul>` : null}
  </div>`;
}

function RunResult({ run, meta }) {
  if (!run) return html`<p>Pick a case (and an injector) and press <strong>Run</strong>.</p>`;
  if (run.error)
    return html`<div role="alert" class="error" data-testid="run-error">
      <strong>${run.error.code}</strong>: ${run.error.message}${run.error.path ? html` (at <code>${run.error.path}</code>)` : null}
    </div>`;
  const r = run.record;
  const status = r?.status ?? run.status ?? 'running';
  const final = !!r && !RUNNING.has(status);
  const injector = meta.injectors.find((i) => i.id === (r?.injector ?? run.injector));
  return html`<div class="result">
    <p class="sr-only" aria-live="polite">${final ? `Run ${status}${r?.outcome ? `, outcome ${r.outcome}` : ''}` : 'Running'}</p>
    <dl class="kv big">
      <dt>Run</dt><dd><code data-testid="run-id">${run.id ?? '…'}</code></dd>
      <dt>Status</dt><dd><span class=${`status status-${status}`} data-testid="run-status" data-final=${final ? 'true' : 'false'} data-run-no=${run.no ?? ''}>${status}</span></dd>
      <dt>Outcome</dt><dd data-testid="run-outcome">${word(r?.outcome)}</dd>
      <dt>Detector</dt><dd><${Detector} d=${r?.detector} fallback=${r ? (injector ? injector.detector : null) : null} /></dd>
      ${run.elapsedMs !== undefined ? html`<dt>Click to final status</dt><dd data-testid="elapsed">${Math.round(run.elapsedMs)} ms</dd>` : null}
    </dl>
    ${r ? html`<${Counters} counters=${r.counters} /><${Evidence} record=${r} />` : html`<p aria-busy="true">Running…</p>`}
  </div>`;
}

function Preflight({ run }) {
  const p = run?.record?.preflight;
  if (!p) return html`<p>Pre-flight runs before every run: the validator checks the program and the policy.</p>`;
  const issues = p.issues ?? [];
  return html`<div data-testid="preflight" data-ok=${p.ok ? 'true' : 'false'}>
    <p class=${p.ok ? 'good' : 'bad'}><strong>${p.ok ? 'Passed' : 'Refused'}</strong>${p.code ? html` <code>${p.code}</code>` : ''}${p.message ? ` — ${p.message}` : ''}</p>
    ${
      issues.length
        ? html`<ul>${issues.map((i, k) => html`<li key=${k}><code>${i.code}</code> ${i.message}${i.location ? html` <small>${[i.location.path, i.location.step, i.location.line ? `${i.location.line}:${i.location.col}` : null].filter(Boolean).join(' ')}</small>` : null}</li>`)}</ul>`
        : p.ok
          ? html`<p class="small">The program and the policy passed the validator; the run was allowed to start.</p>`
          : null
    }
  </div>`;
}

function Stream({ frames, conn, onlyRun, setOnlyRun, runId }) {
  const shown = onlyRun && runId ? frames.filter((f) => f.run_id === runId) : frames;
  return html`<p class="small">Connection: <span data-testid="stream-state">${conn}</span>
      <label class="inline"><input type="checkbox" checked=${onlyRun} onChange=${(e) => setOnlyRun(e.currentTarget.checked)} /> this run only</label>
    </p>
    <ol class="stream" role="log" aria-live="polite" aria-relevant="additions" aria-label="Governance events as they are appended" data-testid="stream">
      ${shown.slice(-120).map(
        (f) => html`<li key=${f.key} class=${`frame frame-${f.type}`}>
          ${
            f.type === 'status'
              ? html`<span class="tag">status</span> <code>${short(f.run_id)}</code> → <strong>${f.status}</strong>${f.outcome ? ` (${f.outcome})` : ''}`
              : html`<span class="seq">#${f.seq}</span> <span class="kind">${f.kind}</span>${f.step ? html` <span class="step">${f.step}</span>` : null}
                <${Hash} value=${f.hash} label="hash" />`
          }
        </li>`,
      )}
    </ol>`;
}

function Audit({ run, audit, onVerify }) {
  if (!run?.id || !run.record) return html`<p>The audit of a run appears here when it finishes.</p>`;
  if (audit?.none) return html`<p data-testid="verify-agree" data-agree="none">${audit.none}</p>`;
  const b = audit?.browser;
  const s = audit?.server;
  const verdict = (v) =>
    !v
      ? '…'
      : (v.ok ?? v.valid)
        ? `valid — ${v.event_count ?? '?'} events, head ${short(v.head_hash)}`
        : `INVALID — ${v.code} at seq ${v.first_bad_seq ?? '—'}: ${v.reason ?? ''}`;
  return html`<div>
    <dl class="kv">
      <dt>In this browser (the kernel's verifier)</dt>
      <dd data-testid="verify-browser" data-ok=${b ? String(b.ok) : ''} data-code=${b?.code ?? ''} data-head=${b?.head_hash ?? ''} data-first-bad=${b?.first_bad_seq ?? ''}>${verdict(b)}</dd>
      <dt>Server (<code>/api/runs/:id/verify</code>)</dt>
      <dd data-testid="verify-server" data-ok=${s ? String(s.ok ?? s.valid) : ''}>${verdict(s)}</dd>
      <dt>Agreement</dt>
      <dd data-testid="verify-agree" data-agree=${audit?.compare ? String(audit.compare.agree) : ''} class=${audit?.compare ? (audit.compare.agree ? 'good' : 'bad') : ''}>
        ${audit?.compare ? (audit.compare.agree ? 'The browser and the server agree' : `They DISAGREE on ${audit.compare.differing.join(', ')}`) : audit?.error ? `Could not verify: ${audit.error}` : '…'}
      </dd>
    </dl>
    ${s?.diff ? html`<p>First bad event, field by field:</p><pre class="json" data-testid="verify-diff">${JSON.stringify(s.diff, null, 2)}</pre>` : null}
    <p>
      <a class="button" href=${api.bundleUrl(run.id)} download=${`${run.id}.bundle.json`} data-testid="bundle-download">Download the bundle</a>
      <button type="button" onClick=${onVerify}>Verify again</button>
    </p>
    <p class="small">Check it yourself, offline: <code>nano-vm verify ${run.id}.bundle.json</code></p>
  </div>`;
}

function FileVerify() {
  const [result, setResult] = useState(null);
  const [busy, setBusy] = useState(false);
  const bundle = useRef(null);
  const sig = useRef(null);
  const key = useRef(null);
  async function check(e) {
    e.preventDefault();
    const b = bundle.current?.files?.[0];
    if (!b) {
      setResult({ ok: false, code: 'E_USAGE', reason: 'choose a bundle file first' });
      return;
    }
    setBusy(true);
    setResult(await verifyFiles(b, sig.current?.files?.[0], key.current?.files?.[0]));
    setBusy(false);
  }
  return html`<details class="file-verify">
    <summary>Verify a bundle file here (with its signature and a trusted key)</summary>
    <form onSubmit=${check}>
      <p class="small">Nothing is uploaded: the files are read and checked in this page, as <code>nano-vm verify &lt;bundle&gt; --key &lt;pub&gt;</code> does. With a key, the bundle must carry a valid signature by it.</p>
      <label class="block" for="fv-bundle">Bundle (.json)</label>
      <input id="fv-bundle" type="file" accept=".json,application/json" ref=${bundle} />
      <label class="block" for="fv-sig">Signature (.sig, optional)</label>
      <input id="fv-sig" type="file" ref=${sig} />
      <label class="block" for="fv-key">Trusted public key (.pub, optional)</label>
      <input id="fv-key" type="file" ref=${key} />
      <div class="row"><button type="submit" disabled=${busy} data-testid="file-verify-run">Verify the file</button></div>
    </form>
    ${
      result
        ? html`<p role="status" data-testid="file-verify" data-ok=${String(result.ok)} data-code=${result.code ?? ''} data-key=${result.key_id ?? ''} data-head=${result.head_hash ?? ''}
          class=${result.ok ? 'good' : 'bad'}>
          ${
            result.ok
              ? `valid — ${result.event_count} events, head ${short(result.head_hash)}${result.signature_checked ? `, signed by ${result.key_id}` : ', signature not checked (no key given)'}`
              : `INVALID — ${result.code}${result.first_bad_seq !== null && result.first_bad_seq !== undefined ? ` at seq ${result.first_bad_seq}` : ''}: ${result.reason}`
          }
        </p>`
        : null
    }
  </details>`;
}

function HumanReceipt({ receipt }) {
  if (!receipt) return html`<p>The receipt of a finished run appears here.</p>`;
  const lv = receipt.list_versions ?? {};
  const rules = receipt.rules_fired ?? [];
  const reviewers = receipt.reviewers ?? [];
  return html`<div data-testid="human-receipt">
    <dl class="kv">
      <dt>Decision</dt><dd data-testid="receipt-decision"><strong>${word(receipt.decision)}</strong></dd>
      ${receipt.risk ? html`<dt>Risk</dt><dd data-testid="receipt-risk">${receipt.risk.band} (${receipt.risk.score} points, ${receipt.risk.policy})</dd>` : null}
      ${
        receipt.screening
          ? html`<dt>Screening</dt><dd>match ${receipt.screening.match}, score ${receipt.screening.score}${receipt.screening.matched_id ? `, ${receipt.screening.matched_id}` : ''}${receipt.screening.pep ? ', PEP' : ''}</dd>`
          : null
      }
      ${
        receipt.review
          ? html`<dt>Model review</dt><dd>${word(receipt.review.answer)}${receipt.review.fallback ? ' (declared fallback)' : ''}${receipt.review.rejected_answers?.length ? html` — rejected answers: ${receipt.review.rejected_answers.map((a, i) => html`<code key=${i}>${a.length > 60 ? `${a.slice(0, 60)}…` : a}</code> `)}` : null}</dd>`
          : null
      }
      <dt>List versions</dt>
      <dd data-testid="receipt-lists">${lv.screening ? html`screening ${lv.screening.version} <${Hash} value=${lv.screening.hash} />` : '—'}${lv.media ? html`; media ${lv.media.version} <${Hash} value=${lv.media.hash} />` : null}</dd>
      <dt>Reviewers</dt>
      <dd data-testid="receipt-reviewers">${reviewers.length ? reviewers.map((r) => (typeof r === 'string' ? r : `${r.reviewer} (${r.decision} at ${r.step}, seq ${r.seq})`)).join('; ') : '—'}</dd>
      <dt>Policy hash</dt><dd><${Hash} value=${receipt.policy_hash} /></dd>
      <dt>Head hash</dt><dd><${Hash} value=${receipt.head_hash} /></dd>
      ${receipt.model ? html`<dt>Model</dt><dd>${receipt.model.id}${receipt.model.scripted ? ' (scripted)' : ''}, ${receipt.model.calls} calls</dd>` : null}
    </dl>
    ${
      receipt.factors && receipt.factors.length
        ? html`<table class="nums" data-testid="receipt-factors"><caption>Risk factors</caption>
          <thead><tr><th scope="col">rule</th><th scope="col">points</th><th scope="col">detail</th></tr></thead>
          <tbody>${receipt.factors.map((f, i) => html`<tr key=${i}><td><code>${f.rule}</code></td><td>${f.points}</td><td>${word(f.detail)}</td></tr>`)}</tbody>
        </table>`
        : html`<p>No risk factors scored.</p>`
    }
    ${
      rules.length
        ? html`<details><summary>Rules fired (${rules.length})</summary>
          <table class="nums"><thead><tr><th scope="col">seq</th><th scope="col">kind</th><th scope="col">step</th><th scope="col">rule</th></tr></thead>
            <tbody>${rules.map((r, i) => (typeof r === 'string' ? html`<tr key=${i}><td colspan="4">${r}</td></tr>` : html`<tr key=${i}><td>${r.seq}</td><td>${r.kind}</td><td>${r.step}</td><td><code>${r.rule}</code></td></tr>`))}</tbody>
          </table></details>`
        : null
    }
  </div>`;
}

function Inbox({ items, reviewers, onDecide, notice }) {
  return html`<div>
    <p class="small">Four-eyes: HIGH risk, PEP or a potential sanctions match needs two distinct reviewers. Reviewers: ${reviewers.join(' and ')}.</p>
    ${notice ? html`<p role="status" class=${notice.ok ? 'good' : 'bad'} data-testid="inbox-notice">${notice.text}</p>` : null}
    ${
      items.length === 0
        ? html`<p data-testid="inbox-empty">No run is waiting for approval.</p>`
        : html`<ul class="inbox" data-testid="inbox">
          ${items.map(
            (it) => html`<li key=${it.run_id} data-run=${it.run_id}>
              <p><code title=${it.run_id}>${short(it.run_id)}</code> ${it.case ? html`<strong>${it.case}</strong>` : null} waits at <code>${it.step}</code>
                ${it.four_eyes ? html` <span class="badge warn">four-eyes</span>` : null}${' '}
                · needs ${word(it.approvals_needed)} more
                ${it.approvals_given?.length ? html` · given: ${it.approvals_given.map((a) => `${a.reviewer} (${a.decision})`).join(', ')}` : null}</p>
              <div class="row" role="group" aria-label=${`Decide run ${it.run_id}`}>
                ${reviewers.map(
                  (
                    rv,
                  ) => html`<button type="button" key=${`a${rv}`} onClick=${() => onDecide(it.run_id, rv, 'approve')} data-action="approve" data-reviewer=${rv}
                      title=${it.excluded_reviewer === rv ? `${rv} already approved: four-eyes will refuse a second approval by the same person` : ''}>Approve as ${rv}</button>
                    <button type="button" key=${`r${rv}`} class="secondary" onClick=${() => onDecide(it.run_id, rv, 'reject')} data-action="reject" data-reviewer=${rv}>Reject as ${rv}</button>`,
                )}
              </div>
            </li>`,
          )}
        </ul>`
    }
  </div>`;
}

function Lanes({ lanes }) {
  if (!lanes)
    return html`<p>Run the three lanes to see the same case without the attack, through a naive executor with the attack, and governed with the attack.</p>`;
  if (lanes.error) return html`<p role="alert" class="error">${lanes.error.code}: ${lanes.error.message}</p>`;
  const d = lanes.divergence;
  const names = ['baseline', 'ungoverned', 'governed'];
  // Where each lane first leaves the baseline's path (a refused lane has no path at all).
  const leaves = (p) => {
    const b = lanes.baseline?.path ?? [];
    for (let i = 0; i < Math.max(b.length, p.length); i++) if (b[i] !== p[i]) return i;
    return -1;
  };
  return html`<div>
    <p data-testid="divergence" data-index=${d ? String(d.index) : ''}><strong>First point of divergence:</strong>
      ${d ? html` step ${d.index + 1} of the paths — ${names.map((n, i) => html`${i ? '; ' : ' '}${n}: <code>${word(d.step?.[n])}</code>`)}` : ' none — the three paths are the same'}</p>
    <div class="lanes">
      ${names.map((n) => {
        const l = lanes[n] ?? {};
        const path = l.path ?? [];
        const at = n === 'baseline' ? -1 : leaves(path);
        return html`<div class=${`lane lane-${n}`} key=${n} data-testid=${`lane-${n}`}>
          <h3>${n}${n === 'ungoverned' ? html` <small class="badge bad">naive executor: the model's answer and the mutation drive</small>` : null}</h3>
          <dl class="kv">
            <dt>Status</dt><dd data-testid=${`lane-${n}-status`}>${word(l.status)}</dd>
            <dt>Outcome</dt><dd data-testid=${`lane-${n}-outcome`}>${word(l.outcome)}</dd>
            ${l.run_id ? html`<dt>Run</dt><dd><code title=${l.run_id}>${short(l.run_id)}</code></dd>` : null}
            ${l.detector ? html`<dt>Detector</dt><dd>${detectorText(l.detector)} — ${l.detector.caught ? 'caught' : l.detector.reached ? 'NOT caught' : 'not reached'}</dd>` : null}
            ${l.error ? html`<dt>Error</dt><dd>${l.error}</dd>` : null}
          </dl>
          ${l.damage && l.damage.length ? html`<ul class="damage" data-testid="damage">${l.damage.map((x, i) => html`<li key=${i}>${x}</li>`)}</ul>` : null}
          ${n !== 'baseline' && path.length === 0 ? html`<p class="small" data-testid=${`lane-${n}-nopath`}>No step ran: ${l.status === 'refused' ? 'refused at pre-flight' : 'nothing executed'}.</p>` : null}
          ${at >= 0 && path.length ? html`<p class="small" data-testid=${`lane-${n}-leaves`}>Leaves the baseline's path at step ${at + 1}: <code>${word(path[at])}</code> instead of <code>${word(lanes.baseline?.path?.[at])}</code></p>` : null}
          <ol class="path">${path.map((s, i) => html`<li key=${i} class=${i === at ? 'diverges' : ''}>${s}${i === at ? ' ← leaves the baseline here' : ''}</li>`)}</ol>
        </div>`;
      })}
    </div>
  </div>`;
}

function Analytics({ analytics, runs, setRuns, onAnalyse, busy }) {
  const a = analytics?.analysis;
  const series = analytics?.series ?? [];
  return html`<div>
    <form class="row" onSubmit=${(e) => {
      e.preventDefault();
      onAnalyse();
    }}>
      <label for="analytics-runs">Seeded runs to analyse</label>
      <input id="analytics-runs" type="number" min="2" max="200" value=${runs} onInput=${(e) => setRuns(e.currentTarget.value)} />
      <button type="submit" disabled=${busy} data-testid="analyse">${busy ? 'Analysing…' : 'Analyse'}</button>
    </form>
    ${
      a?.transitions
        ? html`<p data-testid="analytics-summary">${analytics.runs} runs (seed ${analytics.seed}) · transition entropy ${Number(a.transitions.entropy_bits).toFixed(3)} bits
          (threshold ${a.thresholds?.transition_entropy_bits}) · path variance ${Number(a.paths?.path_variance).toFixed(3)}
          (threshold ${a.thresholds?.path_variance}) · ${a.paths?.distinct} distinct paths · computed by the kernel's analyzer</p>
        <div class="charts">
          <figure><figcaption>Transition entropy H(next | step) as runs accumulate, bits (dashed: threshold ${a.thresholds?.transition_entropy_bits})</figcaption>
            <${SeriesChart} xs=${series.map((x) => x.runs)} ys=${series.map((x) => x.entropy_bits)} threshold=${a.thresholds?.transition_entropy_bits} name="entropy (bits)" colour="#6d28d9" /></figure>
          <figure><figcaption>Path variance as runs accumulate (dashed: threshold ${a.thresholds?.path_variance})</figcaption>
            <${SeriesChart} xs=${series.map((x) => x.runs)} ys=${series.map((x) => x.path_variance)} threshold=${a.thresholds?.path_variance} name="path variance" colour="#047857" /></figure>
          <figure><figcaption>Entropy of the next step, for the steps with a choice (bits)</figcaption><${EntropyChart} states=${a.transitions.states} threshold=${a.thresholds?.transition_entropy_bits} /></figure>
        </div>
        <${Alerts} alerts=${a.alerts ?? []} />`
        : analytics?.error
          ? html`<p role="alert" class="error">${analytics.error}</p>`
          : null
    }
  </div>`;
}

function Alerts({ alerts }) {
  if (alerts.length === 0) return html`<p>No alert: every metric is within its threshold.</p>`;
  const byCode = new Map();
  for (const al of alerts) byCode.set(al.code, [...(byCode.get(al.code) ?? []), al]);
  return html`<div data-testid="alerts">
    <p><strong>Alerts</strong> (the analyzer's, against its thresholds):</p>
    <ul>
      ${[...byCode].map(
        ([
          code,
          list,
        ]) => html`<li key=${code}><code>${code}</code> ${list.length === 1 ? list[0].message : html`${list.length} runs`}
          ${list.length > 1 ? html`<details><summary>show them</summary><ul class="small">${list.map((al, i) => html`<li key=${i}>${al.message}</li>`)}</ul></details>` : null}</li>`,
      )}
    </ul>
  </div>`;
}

function PolicyPanel({ meta }) {
  return html`<dl class="kv">
      <dt>Program</dt><dd><code>${meta.program.id}</code> <${Hash} value=${meta.program.hash} label="program hash" /></dd>
      <dt>Policy hash</dt><dd data-testid="policy-hash"><code class="hash wrap">${meta.policy.hash}</code></dd>
    </dl>
    <details><summary>The policy in force (YAML)</summary><pre class="policy">${meta.policy.text}</pre></details>`;
}

function App() {
  const [meta, setMeta] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [choice, setChoice] = useState('');
  const [customText, setCustomText] = useState('');
  const [injector, setInjector] = useState('');
  const [run, setRun] = useState(null);
  const [audit, setAudit] = useState(null);
  const [frames, setFrames] = useState([]);
  const [conn, setConn] = useState('connecting');
  const [onlyRun, setOnlyRun] = useState(false);
  const [inbox, setInbox] = useState([]);
  const [notice, setNotice] = useState(null);
  const [lanes, setLanes] = useState(null);
  const [busy, setBusy] = useState(false);
  const clicks = useRef(0);
  const [analytics, setAnalytics] = useState(null);
  const [aRuns, setARuns] = useState('30');
  const [aBusy, setABusy] = useState(false);
  const runRef = useRef(null);
  const waiters = useRef(new Set());
  const liveId = useRef(null);
  runRef.current = run;

  useEffect(() => {
    api.meta().then(
      (m) => {
        setMeta(m);
        if (m.cases[0]) {
          setChoice(m.cases[0].id);
          setCustomText(JSON.stringify(m.cases[0].input, null, 2));
        }
      },
      (e) => setLoadError(e.message),
    );
    refreshInbox();
    let n = 0;
    // Frames are applied in batches (one render per ~40 ms, not one per event). A run's events are
    // followed live from its run_started frame after the click, before the server's answer names it.
    let pending = [];
    let timer = null;
    const flush = () => {
      timer = null;
      const batch = pending;
      pending = [];
      setFrames((fs) => [...fs, ...batch].slice(-400));
      const cur = runRef.current;
      const id = cur?.id ?? liveId.current;
      const mine = batch.filter((f) => f.type === 'trace' && f.run_id === id);
      if (mine.length)
        setRun((r) =>
          r && (r.id ?? liveId.current) === id && !r.record ? { ...r, live: [...(r.live ?? []), ...mine] } : r,
        );
    };
    const push = (f) => {
      pending.push(f);
      if (timer === null) timer = setTimeout(flush, 40);
    };
    return subscribe(
      (t) => {
        const cur = runRef.current;
        if (cur && !cur.id && !cur.record && liveId.current === null && t.kind === 'run_started')
          liveId.current = t.run_id;
        push({ ...t, type: 'trace', key: `t${n++}` });
      },
      (s) => {
        push({ ...s, type: 'status', key: `s${n++}` });
        for (const w of waiters.current) w(s);
        if (!RUNNING.has(s.status)) refreshInbox();
      },
      setConn,
    );
  }, []);

  function refreshInbox() {
    api.inbox().then(
      (x) => setInbox(x?.waiting ?? []),
      () => {},
    );
  }

  /** Waits for a status frame of the run or a short poll, whichever comes first. */
  function nextStatus(id, ms) {
    return new Promise((resolve) => {
      const w = (s) => {
        if (s.run_id === id) done();
      };
      const t = setTimeout(() => done(), ms);
      function done() {
        clearTimeout(t);
        waiters.current.delete(w);
        resolve();
      }
      waiters.current.add(w);
    });
  }

  async function doVerify(id, record) {
    setAudit(null);
    if (record && record.status === 'refused') {
      setAudit({
        none: 'The run was refused at pre-flight, before its first event: nothing was stored and there is no bundle to verify.',
      });
      return;
    }
    try {
      const [bundle, server] = await Promise.all([api.bundle(id), api.verify(id)]);
      const browser = verifyInBrowser(bundle);
      setAudit({ browser, server, compare: compareVerdicts(browser, server) });
    } catch (e) {
      setAudit({ error: e.message });
    }
  }

  async function start() {
    let body;
    if (choice === '__custom') {
      let input;
      try {
        input = JSON.parse(customText);
      } catch (e) {
        setRun({ error: { code: 'E_JSON', message: `the input is not JSON: ${e.message}` } });
        return;
      }
      body = { input };
    } else body = { case: choice };
    if (injector) body.injector = injector;
    setBusy(true);
    setAudit(null);
    const t0 = performance.now();
    clicks.current += 1;
    liveId.current = null;
    setRun({ status: 'running', injector, live: [], no: clicks.current });
    try {
      // The server answers once the run has settled (ended, waiting, refused); a run still going is polled.
      const res = await api.start(body);
      const id = res.run_id;
      setRun((r) => ({ ...r, id, status: res.status }));
      let record = res.events ? res : await api.run(id);
      while (RUNNING.has(record.status)) {
        await nextStatus(id, 300);
        record = await api.run(id);
      }
      const elapsedMs = performance.now() - t0;
      setRun((r) => ({ ...r, id, record, status: record.status, elapsedMs }));
      refreshInbox();
      await doVerify(id, record);
    } catch (e) {
      setRun({ error: { code: e.code ?? 'E_CLIENT', message: e.message, path: e.path } });
    } finally {
      setBusy(false);
    }
  }

  async function startLanes() {
    if (choice === '__custom') {
      setLanes({ error: { code: 'E_USAGE', message: 'lanes run on a seeded case' } });
      return;
    }
    setBusy(true);
    setLanes(null);
    try {
      setLanes(await api.start({ case: choice, lanes: true, ...(injector ? { injector } : {}) }));
    } catch (e) {
      setLanes({ error: { code: e.code, message: e.message } });
    } finally {
      setBusy(false);
    }
  }

  async function decide(id, reviewer, decision) {
    try {
      const res = await api.approve(id, reviewer, decision);
      const blocked = res?.outcome === 'POLICY_BLOCKED';
      setNotice({
        ok: !blocked,
        text: `${reviewer}: ${decision} recorded for ${short(id)}${res?.status ? ` — run is ${res.status}${res.outcome ? ` (${res.outcome})` : ''}` : ''}`,
      });
      // The decided run becomes the one shown: its new status, receipt (with the reviewers) and audit.
      const record = res?.events ? res : await api.run(id);
      setRun((r) => ({ no: r?.no, live: [], ...(r?.id === id ? r : {}), id, record, status: record.status }));
      await doVerify(id, record);
    } catch (e) {
      setNotice({ ok: false, text: `${reviewer}: refused — ${e.message}` });
    }
    refreshInbox();
  }

  async function analyse() {
    setABusy(true);
    try {
      setAnalytics(await api.analytics(Number(aRuns) || 30));
    } catch (e) {
      setAnalytics({ error: e.message });
    } finally {
      setABusy(false);
    }
  }

  if (loadError)
    return html`<main id="main"><p role="alert" class="error">The server did not answer /api/meta: ${loadError}</p></main>`;
  if (!meta) return html`<main id="main"><p aria-busy="true">Loading…</p></main>`;

  const events = run?.record?.events ?? run?.live ?? [];
  const states = stepStates(events, meta.program.graph);
  const health = run?.record?.health?.metrics ?? run?.record?.receipt?.health;
  const thresholds = run?.record?.health?.thresholds ?? analytics?.analysis?.thresholds ?? meta.thresholds;
  const reviewers = meta.reviewers ?? ['alice', 'bob'];

  return html`<header class="top">
      <h1>KYC Governance Simulator</h1>
      <p class="tag">Real attacks on a real KYC pipeline, caught with evidence — every number below comes from a real run of nano-vm.</p>
      <${Badges} meta=${meta} />
    </header>
    <main id="main" class="grid">
      <${Panel} id="controls" span=${3} title="Case and injector">
        <${CasePicker} meta=${meta} choice=${choice} setChoice=${(c) => {
          setChoice(c);
        }} customText=${customText} setCustomText=${setCustomText} disabled=${busy} />
        <${InjectorControls} meta=${meta} injector=${injector} setInjector=${setInjector} disabled=${busy} />
        <div class="row">
          <button type="button" class="primary" onClick=${start} disabled=${busy} data-testid="run" data-presses=${clicks.current}>Run</button>
          <button type="button" onClick=${startLanes} disabled=${busy} data-testid="run-lanes">Compare three lanes</button>
        </div>
      <//>
      <${Panel} id="program" span=${5} title="The program, step by step">
        <${Diagram} graph=${meta.program.graph} states=${states} />
      <//>
      <${Panel} id="result" span=${4} title="Run result">
        <${RunResult} run=${run} meta=${meta} />
      <//>
      <${Panel} id="stream" span=${4} title="Live governance stream">
        <${Stream} frames=${frames} conn=${conn} onlyRun=${onlyRun} setOnlyRun=${setOnlyRun} runId=${run?.id} />
      <//>
      <${Panel} id="audit" span=${4} title="Audit: verified in this browser">
        <${Audit} run=${run} audit=${audit} onVerify=${() => run?.id && doVerify(run.id, run.record)} />
        <${FileVerify} />
      <//>
      <${Panel} id="receipt" span=${4} title="Receipt (human-readable)">
        <${HumanReceipt} receipt=${run?.record?.human_receipt} />
      <//>
      <${Panel} id="preflight" span=${3} title="Pre-flight">
        <${Preflight} run=${run} />
      <//>
      <${Panel} id="health" span=${3} title="Trace health of this run">
        ${health ? html`<${HealthChart} health=${health} thresholds=${thresholds} />` : html`<p>Health is computed from a finished run's trace.</p>`}
      <//>
      <${Panel} id="inbox" span=${3} title="Approval inbox">
        <${Inbox} items=${inbox} reviewers=${reviewers} onDecide=${decide} notice=${notice} />
      <//>
      <${Panel} id="policy" span=${3} title="Policy in force">
        <${PolicyPanel} meta=${meta} />
      <//>
      <${Panel} id="lanes" title="Three lanes: baseline, ungoverned, governed" span=${12}>
        <${Lanes} lanes=${lanes} />
      <//>
      <${Panel} id="analytics" title="Across runs: entropy and path variance" span=${12}>
        <${Analytics} analytics=${analytics} runs=${aRuns} setRuns=${setARuns} onAnalyse=${analyse} busy=${aBusy} />
      <//>
    </main>`;
}

const root = document.getElementById('root');
root.textContent = '';
render(html`<${App} />`, root);
