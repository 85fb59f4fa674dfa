// meilab admin: copy buttons and live figures. No dependencies, no build step.

/** Copy buttons: `data-copy` names the input whose value goes to the clipboard. */
function setUpCopyButtons() {
  for (const button of document.querySelectorAll('button[data-copy]')) {
    button.addEventListener('click', async () => {
      const input = document.getElementById(button.dataset.copy);
      if (!input) return;
      try {
        await navigator.clipboard.writeText(input.value);
      } catch {
        // Without the clipboard API (plain http), select the text so Ctrl-C copies it.
        input.focus();
        input.select();
        document.execCommand('copy');
      }
      button.textContent = 'Copied';
      button.classList.add('copied');
      setTimeout(() => {
        button.textContent = 'Copy';
        button.classList.remove('copied');
      }, 1500);
    });
  }
}

/** Calls `apply` with fresh JSON from `url` every `interval` ms while the page is visible. */
function poll(url, interval, apply, onFailure) {
  let timer = null;
  const tick = async () => {
    timer = null;
    try {
      const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
      if (response.status === 401) {
        window.location.reload(); // the session ended: the page sends us to the login form
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      apply(await response.json());
    } catch {
      onFailure?.();
    }
    if (!document.hidden) timer = setTimeout(tick, interval);
  };
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && timer === null) tick();
  });
  timer = setTimeout(tick, interval);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else if (key === 'style') node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function meter(percent, label, done) {
  return el(
    'div',
    { class: 'meter' },
    el('div', { class: 'meter-bar' }, el('div', { class: `meter-fill${done ? ' done' : ''}`, style: `width: ${percent}%` })),
    el('span', { class: 'meter-label' }, label),
  );
}

/** The monitoring page: figures, per-unit table and exclusion reasons from `monitor.json`. */
function setUpMonitor() {
  const root = document.querySelector('[data-monitor]');
  if (!root) return;
  const live = root.querySelector('.live');
  poll(root.dataset.monitor, Number(root.dataset.interval) || 5000, (data) => {
    live?.classList.remove('stale');
    for (const node of root.querySelectorAll('[data-stat]')) {
      const value = data.text[node.dataset.stat];
      if (value !== undefined && node.textContent !== value) node.textContent = value;
    }
    const overall = root.querySelector('[data-meter="overall"]');
    if (overall) overall.style.width = `${data.percent}%`;
    const units = root.querySelector('[data-units]');
    if (units) {
      const rows = data.units.map((u) =>
        el(
          'tr',
          {},
          el('td', {}, u.label),
          el('td', { class: 'num' }, String(u.assigned)),
          el('td', {}, meter(u.percent, `${u.valid} / ${u.target}`, u.valid >= u.target)),
        ),
      );
      if (rows.length === 0) rows.push(el('tr', {}, el('td', { colspan: '3', class: 'muted' }, 'No stimuli yet.')));
      units.replaceChildren(...rows);
    }
    const reasons = root.querySelector('[data-reasons]');
    if (reasons) {
      const items = data.reasons.map((r) =>
        el('li', {}, el('span', {}, r.reason), el('span', { class: 'num' }, String(r.sessions))),
      );
      if (items.length === 0) items.push(el('li', { class: 'muted' }, 'No session excluded.'));
      reasons.replaceChildren(...items);
    }
    const excluded = root.querySelector('[data-excluded]');
    if (excluded) {
      const items = data.recent_exclusions.map((e) =>
        el(
          'li',
          {},
          el('span', { class: 'session-id' }, e.session),
          ' ',
          el('span', { class: 'sub' }, e.when),
          el('ul', {}, ...e.failed.map((f) => el('li', {}, f))),
        ),
      );
      if (items.length === 0) items.push(el('li', { class: 'muted' }, 'None.'));
      excluded.replaceChildren(...items);
    }
  }, () => live?.classList.add('stale'));
}

/** The studies list: progress and session counts from `studies.json`. */
function setUpStudyList() {
  const table = document.querySelector('table[data-refresh]');
  if (!table) return;
  poll(table.dataset.refresh, 10000, (data) => {
    for (const study of data.studies) {
      const row = table.querySelector(`tr[data-study="${study.id}"]`);
      if (!row) continue;
      const set = (field, text) => {
        const node = row.querySelector(`[data-field="${field}"]`);
        if (node && node.textContent !== text) node.textContent = text;
      };
      set('status', study.status);
      set('completed', String(study.completed));
      set('sessions', String(study.sessions));
      set('progress', study.progress);
      const badge = row.querySelector('[data-field="status"]');
      if (badge) badge.className = `badge status-${study.status}`;
      const fill = row.querySelector('.meter-fill');
      if (fill) fill.style.width = `${study.percent}%`;
    }
  });
}

/** The lab's jobs table: status, progress and outcome from `jobs.json`; new jobs reload the page. */
function setUpJobs() {
  const table = document.querySelector('table[data-jobs]');
  if (!table) return;
  poll(table.dataset.jobs, 1000, (data) => {
    for (const job of data.jobs) {
      const row = table.querySelector(`tr[data-job="${job.id}"]`);
      if (!row) continue;
      const status = row.querySelector('[data-field="status"]');
      if (status.textContent !== job.status) {
        if (!job.cancellable) row.querySelector('form')?.remove();
        status.textContent = job.status;
        status.className = `badge job-${job.status}`;
      }
      row.querySelector('[data-field="progress"]').textContent = `${job.phase} ${job.progress} / ${job.total}`;
      row.querySelector('.meter-fill').style.width = `${job.percent}%`;
      const outcome = row.querySelector('[data-field="outcome"]');
      const text = job.error || job.outcome;
      if (outcome.textContent !== text) {
        outcome.replaceChildren(
          job.error ? el('span', { class: 'field-error' }, job.error)
            : job.link ? el('a', { href: job.link }, job.outcome) : job.outcome,
        );
      }
    }
  });
}

setUpCopyButtons();
setUpJobs();
setUpMonitor();
setUpStudyList();
