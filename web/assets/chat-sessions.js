// The chats sidebar: list, create, pick (remembered across visits), rename, delete, and the
// drawer it becomes on narrow screens.
import { api, h, formatRelative } from '/assets/api.js';

const STORAGE_KEY = 'roost.currentSession';

function sessionTitle(s) {
  return (s && s.title && String(s.title).trim()) || 'New chat';
}

/**
 * `onSelect(key)` runs after the current chat changed; `onDeleted(key)` after a chat is gone;
 * `onLoadFailed(message, retry)` when the list cannot be loaded at all.
 */
export function createSessionList({ root, onSelect, onDeleted, onLoadFailed }) {
  const $ = (sel) => root.querySelector(sel);
  const listEl = $('#session-list');
  const sessionsEmpty = $('#sessions-empty');
  const sessionsError = $('#sessions-error');
  const titleEl = $('#chat-title');
  const backdrop = $('#sessions-backdrop');

  let sessions = [];
  let currentKey = null;

  function showError(message) {
    sessionsError.textContent = message || '';
    sessionsError.hidden = !message;
  }

  function sortSessions() {
    sessions.sort((a, b) => (b.updated_at || 0) - (a.updated_at || 0));
  }

  function render() {
    sortSessions();
    listEl.replaceChildren(
      ...sessions.map((s) => {
        const isActive = s.key === currentKey;
        const li = h('li', {
          class: `session${isActive ? ' active' : ''}`,
          'data-testid': 'session',
          'data-key': s.key,
          'data-active': isActive ? 'true' : 'false',
        });
        const open = h('button', { type: 'button', class: 'session-open', 'data-testid': 'session-open', title: sessionTitle(s), 'aria-current': isActive ? 'true' : null },
          h('span', { class: 'session-title' }, sessionTitle(s)),
          h('span', { class: 'session-time' }, formatRelative(s.updated_at)));
        open.addEventListener('click', () => select(s.key));
        const rename = h('button', { type: 'button', class: 'icon-btn', 'data-testid': 'session-rename', title: 'Rename', 'aria-label': `Rename ${sessionTitle(s)}` }, '✎');
        rename.addEventListener('click', () => startRename(li, s));
        const del = h('button', { type: 'button', class: 'icon-btn danger', 'data-testid': 'session-delete', title: 'Delete', 'aria-label': `Delete ${sessionTitle(s)}` }, '×');
        del.addEventListener('click', () => deleteSession(s));
        li.append(open, h('span', { class: 'session-actions' }, rename, del));
        return li;
      }),
    );
    sessionsEmpty.hidden = sessions.length > 0;
    const cur = sessions.find((s) => s.key === currentKey);
    titleEl.textContent = cur ? sessionTitle(cur) : 'Chat';
  }

  async function fetchSessions() {
    const data = await api('GET', '/api/sessions', undefined, { redirectOn401: true });
    sessions = Array.isArray(data && data.sessions) ? data.sessions : [];
  }

  async function load() {
    showError('');
    try {
      await fetchSessions();
      if (sessions.length === 0) {
        const s = await api('POST', '/api/sessions', {}, { redirectOn401: true });
        sessions = [s];
      }
    } catch (err) {
      showError(`Couldn't load chats. ${err.message}`);
      onLoadFailed(`Couldn't load your chats. ${err.message}`, () => load());
      return;
    }
    sortSessions();
    let saved = null;
    try {
      saved = localStorage.getItem(STORAGE_KEY);
    } catch {
      /* storage disabled */
    }
    const pick = sessions.find((s) => s.key === saved) || sessions[0];
    select(pick.key, { force: true });
  }

  async function refreshQuietly() {
    try {
      await fetchSessions();
      render();
    } catch {
      /* keep the list we have */
    }
  }

  function select(key, { force = false } = {}) {
    closeDrawer();
    if (key === currentKey && !force) return;
    currentKey = key;
    try {
      localStorage.setItem(STORAGE_KEY, key);
    } catch {
      /* ignore */
    }
    render();
    onSelect(key);
  }

  async function create() {
    showError('');
    try {
      const s = await api('POST', '/api/sessions', {}, { redirectOn401: true });
      sessions.unshift(s);
      select(s.key);
      $('#composer').focus();
    } catch (err) {
      showError(err.message);
    }
  }

  function startRename(li, s) {
    const input = h('input', { class: 'session-rename-input', 'data-testid': 'session-rename-input', value: s.title || '', maxlength: 200, 'aria-label': 'Chat name' });
    const open = li.querySelector('.session-open');
    open.hidden = true;
    li.querySelector('.session-actions').hidden = true;
    li.prepend(input);
    input.focus();
    input.select();
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (!save || !title || title === s.title) {
        render();
        return;
      }
      try {
        const updated = await api('PATCH', `/api/sessions/${encodeURIComponent(s.key)}`, { title }, { redirectOn401: true });
        Object.assign(s, updated && updated.key ? updated : { title });
        showError('');
      } catch (err) {
        showError(`Couldn't rename. ${err.message}`);
      }
      render();
    };
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        finish(true);
      } else if (ev.key === 'Escape') {
        ev.preventDefault();
        ev.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener('blur', () => finish(true));
  }

  async function deleteSession(s) {
    if (!window.confirm(`Delete "${sessionTitle(s)}"? This cannot be undone.`)) return;
    try {
      await api('DELETE', `/api/sessions/${encodeURIComponent(s.key)}`, undefined, { redirectOn401: true });
    } catch (err) {
      showError(`Couldn't delete. ${err.message}`);
      return;
    }
    showError('');
    onDeleted(s.key);
    sessions = sessions.filter((x) => x.key !== s.key);
    if (s.key === currentKey) {
      currentKey = null;
      if (sessions.length) select(sessions[0].key);
      else create();
    } else {
      render();
    }
  }

  function drawerOpen() {
    return root.classList.contains('drawer-open');
  }
  function closeDrawer() {
    root.classList.remove('drawer-open');
    backdrop.hidden = true;
  }
  $('#sessions-toggle').addEventListener('click', () => {
    const open = !drawerOpen();
    root.classList.toggle('drawer-open', open);
    backdrop.hidden = !open;
  });
  backdrop.addEventListener('click', closeDrawer);
  $('#new-session').addEventListener('click', create);

  return {
    get currentKey() {
      return currentKey;
    },
    load,
    refreshQuietly,
    drawerOpen,
    closeDrawer,
  };
}
