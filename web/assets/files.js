// Files view: the agent's workspace. Breadcrumbs, the folder's names, upload (with progress),
// download, delete (after a confirm), and a viewer: Markdown through the chat's sanitizing
// renderer, images as images, other text as text. Nothing the agent wrote runs here: Markdown is
// sanitized, text is set as text, and the server serves every file so it cannot run either.
import { api, h, formatRelative } from '/assets/api.js';
import { renderMarkdown } from '/assets/markdown.js';

/** Text previews stop here; larger files are for downloading. */
const PREVIEW_LIMIT = 1024 * 1024;
const IMAGE = /\.(png|jpe?g|gif|webp|avif|bmp|ico)$/i;
const MARKDOWN = /\.(md|markdown)$/i;
const TEXT = /\.(txt|text|log|csv|tsv|json|jsonl|ya?ml|toml|ini|cfg|conf|env|xml|html?|svg|css|m?js|tsx?|jsx|py|rs|go|rb|java|c|h|cpp|hpp|sh|bash|zsh|sql|diff|patch)$|^[^.]+$/i;

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

const join = (dir, name) => (dir ? `${dir}/${name}` : name);
const contentUrl = (path, download = false) =>
  `/api/files/content?path=${encodeURIComponent(path)}${download ? '&download=true' : ''}`;

export function initFiles({ root }) {
  const $ = (sel) => root.querySelector(sel);
  const errorEl = $('#files-error');
  const statusEl = $('#files-status');
  const crumbsEl = $('#files-crumbs');
  const rowsEl = $('#files-rows');
  const viewerEl = $('#files-viewer');
  const input = $('#files-upload-input');
  let dir = '';
  let viewing = null;

  function say(el, text) {
    el.textContent = text || '';
    el.hidden = !text;
  }

  function crumbs() {
    const parts = dir ? dir.split('/') : [];
    const items = [h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'files-crumb', onclick: () => open('') }, 'Workspace')];
    parts.forEach((name, i) => {
      const to = parts.slice(0, i + 1).join('/');
      items.push(h('span', { class: 'muted', 'aria-hidden': 'true' }, ' / '));
      items.push(h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'files-crumb', onclick: () => open(to) }, name));
    });
    crumbsEl.replaceChildren(...items);
  }

  function row(entry) {
    const path = join(dir, entry.name);
    const isDir = entry.kind === 'dir';
    const nameButton = h('button', {
      type: 'button', class: 'btn btn-ghost btn-small file-name', 'data-testid': 'file-open',
      'data-kind': entry.kind, onclick: () => (isDir ? open(path) : view(path, entry)),
    }, isDir ? `${entry.name}/` : entry.name);
    const actions = h('td', { class: 'file-actions' });
    if (!isDir) {
      actions.append(h('a', { class: 'btn btn-ghost btn-small', href: contentUrl(path, true), download: entry.name, 'data-testid': 'file-download' }, 'Download'));
    }
    actions.append(h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'file-delete', onclick: () => remove(path, isDir) }, 'Delete'));
    return h('tr', { 'data-testid': 'file-row', 'data-name': entry.name },
      h('td', {}, nameButton),
      h('td', { class: 'muted' }, isDir ? 'Folder' : formatSize(entry.size)),
      h('td', { class: 'muted' }, entry.modified ? formatRelative(entry.modified) : '—'),
      actions);
  }

  /** Lists `to`; `keepStatus` keeps the lines that say what was just done (or refused). */
  async function open(to, { keepStatus = false } = {}) {
    if (!keepStatus) say(errorEl, '');
    let listing;
    try {
      listing = await api('GET', `/api/files?path=${encodeURIComponent(to)}`, undefined, { redirectOn401: true });
    } catch (err) {
      say(errorEl, err.message);
      return;
    }
    dir = to;
    crumbs();
    const rows = listing.entries.map(row);
    if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: 4, class: 'muted', 'data-testid': 'files-empty' }, 'This folder is empty.')));
    rowsEl.replaceChildren(...rows);
    if (listing.truncated) say(statusEl, `Only the first ${listing.entries.length} names are shown.`);
    else if (!keepStatus) say(statusEl, '');
  }

  async function view(path, entry) {
    viewing = path;
    const title = h('h2', { 'data-testid': 'viewer-title' }, entry.name);
    const close = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'viewer-close', onclick: closeViewer }, 'Close');
    const body = h('div', { class: 'viewer-body', 'data-testid': 'viewer-body' });
    viewerEl.replaceChildren(h('div', { class: 'viewer-head' }, title, close), body);
    viewerEl.hidden = false;
    if (IMAGE.test(entry.name)) {
      body.append(h('img', { src: contentUrl(path), alt: entry.name, 'data-testid': 'viewer-image' }));
      return;
    }
    const isMarkdown = MARKDOWN.test(entry.name);
    if (!(isMarkdown || TEXT.test(entry.name)) || entry.size > PREVIEW_LIMIT) {
      body.append(h('p', { class: 'muted' }, 'There is no preview of this file here. Download it to open it.'));
      return;
    }
    let text;
    try {
      const res = await fetch(contentUrl(path), { credentials: 'same-origin' });
      if (!res.ok) throw new Error();
      text = await res.text();
    } catch {
      body.append(h('p', { class: 'form-error' }, 'The file could not be read. Try again.'));
      return;
    }
    if (viewing !== path) return;
    if (isMarkdown) {
      const md = h('div', { class: 'markdown', 'data-testid': 'viewer-markdown' });
      renderMarkdown(md, text);
      body.append(md);
    } else {
      body.append(h('pre', { class: 'viewer-text', 'data-testid': 'viewer-text' }, text));
    }
  }

  function closeViewer() {
    viewing = null;
    viewerEl.hidden = true;
    viewerEl.replaceChildren();
  }

  async function remove(path, isDir) {
    const what = isDir ? `the folder “${path}” and everything in it` : `“${path}”`;
    if (!window.confirm(`Delete ${what}? This cannot be undone.`)) return;
    try {
      await api('DELETE', `/api/files?path=${encodeURIComponent(path)}${isDir ? '&recursive=true' : ''}`);
    } catch (err) {
      say(errorEl, err.message);
      return;
    }
    if (viewing === path) closeViewer();
    say(statusEl, `Deleted ${path}.`);
    await open(dir, { keepStatus: true });
  }

  /** One file, with its progress in words; XHR because fetch reports no upload progress. */
  function uploadOne(file) {
    const path = join(dir, file.name);
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', contentUrl(path));
      xhr.upload.onprogress = (ev) => {
        if (ev.lengthComputable) say(statusEl, `Uploading ${file.name}: ${Math.floor((ev.loaded / ev.total) * 100)}%`);
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          say(statusEl, `Uploaded ${file.name}.`);
          resolve(true);
          return;
        }
        let message = 'The upload failed. Try again.';
        try {
          message = JSON.parse(xhr.responseText).error.message || message;
        } catch { /* not JSON */ }
        say(errorEl, message);
        say(statusEl, '');
        resolve(false);
      };
      xhr.onerror = () => {
        say(errorEl, 'Could not reach the server. Check your connection and try again.');
        say(statusEl, '');
        resolve(false);
      };
      say(statusEl, `Uploading ${file.name}: 0%`);
      xhr.send(file);
    });
  }

  input.addEventListener('change', async () => {
    say(errorEl, '');
    const files = [...input.files];
    input.value = '';
    for (const file of files) {
      if (file.size > 100 * 1024 * 1024) {
        say(errorEl, `${file.name} is over 100 MB; an upload is at most 100 MB.`);
        continue;
      }
      if (!(await uploadOne(file))) break;
    }
    await open(dir, { keepStatus: true });
  });

  return {
    show() {
      open(dir);
    },
    hide() {},
  };
}
