// The chats sidebar: list, search, create (reusing an empty chat), pick (remembered across
// visits), rename, archive, delete, and the drawer it becomes on narrow screens.
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
  let search = '';
  let showArchived = false;
  let searchTimer = 0;

  // Search and the archived shelf, built here so the page's markup stays as it is.
  const searchInput = h('input', { type: 'search', class: 'session-search', id: 'session-search', 'data-testid': 'session-search',
    placeholder: 'Search chats', 'aria-label': 'Search chats by title', maxlength: 100, autocomplete: 'off' });
  const shelfBtn = h('button', { type: 'button', class: 'btn btn-ghost btn-small session-shelf', 'data-testid': 'show-archived',
    'aria-pressed': 'false' }, 'Archived chats');
  listEl.before(searchInput);
  listEl.after(shelfBtn);
  listEl.setAttribute('aria-label', 'Your chats');
  searchInput.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      search = searchInput.value.trim();
      refreshQuietly();
    }, 200);
  });
  shelfBtn.addEventListener('click', () => {
    showArchived = !showArchived;
    shelfBtn.setAttribute('aria-pressed', String(showArchived));
    shelfBtn.textContent = showArchived ? 'Back to your chats' : 'Archived chats';
    refreshQuietly();
  });

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
        const shelve = s.key === 'main' ? null : h('button', { type: 'button', class: 'icon-btn',
          'data-testid': showArchived ? 'session-unarchive' : 'session-archive',
          title: showArchived ? 'Bring back' : 'Archive',
          'aria-label': `${showArchived ? 'Bring back' : 'Archive'} ${sessionTitle(s)}` }, showArchived ? '↩' : '⌫');
        shelve?.addEventListener('click', () => setArchived(s, !showArchived));
        li.append(open, h('span', { class: 'session-actions' }, rename, shelve, del));
        return li;
      }),
    );
    sessionsEmpty.hidden = sessions.length > 0;
    sessionsEmpty.textContent = search ? 'No chat has that in its title.' : showArchived ? 'No archived chats.' : 'No chats yet.';
    const cur = sessions.find((s) => s.key === currentKey);
    titleEl.textContent = cur ? sessionTitle(cur) : 'Chat';
  }

  async function fetchSessions() {
    const params = new URLSearchParams();
    if (search) params.set('q', search);
    if (showArchived) params.set('archived', 'true');
    const query = params.toString() ? `?${params}` : '';
    const data = await api('GET', `/api/sessions${query}`, undefined, { redirectOn401: true });
    sessions = Array.isArray(data && data.sessions) ? data.sessions : [];
  }

  async function setArchived(s, archived) {
    try {
      await api('PATCH', `/api/sessions/${encodeURIComponent(s.key)}`, { archived }, { redirectOn401: true });
    } catch (err) {
      showError(`Couldn't ${archived ? 'archive' : 'bring back'} the chat. ${err.message}`);
      return;
    }
    showError('');
    sessions = sessions.filter((x) => x.key !== s.key);
    if (archived && s.key === currentKey) {
      // The chat on screen went to the archive: show the newest listed one.
      const listed = await api('GET', '/api/sessions', undefined, { redirectOn401: true }).catch(() => null);
      const next = listed && Array.isArray(listed.sessions) ? listed.sessions[0] : null;
      if (next) select(next.key, { force: true });
    }
    render();
  }

  /** The first message of an untitled chat titles it (the server does the same, for good). */
  function noteSent(key, text) {
    const s = sessions.find((x) => x.key === key);
    if (!s || s.titled) return;
    const line = String(text).split('\n').map((l) => l.trim()).find(Boolean);
    if (!line) return;
    const squeezed = line.replace(/\s+/g, ' ');
    let title = squeezed;
    if ([...squeezed].length > 60) {
      const cut = [...squeezed].slice(0, 60).join('');
      const space = cut.lastIndexOf(' ');
      title = `${(space >= 30 ? cut.slice(0, space) : cut).trimEnd()}…`;
    }
    s.title = title;
    s.titled = true;
    render();
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
      // The server gives back an empty chat if there is one, rather than another.
      const s = await api('POST', '/api/sessions', {}, { redirectOn401: true });
      if (showArchived || search) {
        showArchived = false;
        search = '';
        searchInput.value = '';
        shelfBtn.setAttribute('aria-pressed', 'false');
        shelfBtn.textContent = 'Archived chats';
        await fetchSessions().catch(() => {});
      }
      if (!sessions.some((x) => x.key === s.key)) sessions.unshift(s);
      select(s.key, { force: true });
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
  function setDrawer(open) {
    root.classList.toggle('drawer-open', open);
    backdrop.hidden = !open;
    $('#sessions-toggle').setAttribute('aria-expanded', String(open));
  }
  function closeDrawer() {
    setDrawer(false);
  }
  $('#sessions-toggle').addEventListener('click', () => setDrawer(!drawerOpen()));
  backdrop.addEventListener('click', closeDrawer);
  $('#new-session').addEventListener('click', create);

  return {
    get currentKey() {
      return currentKey;
    },
    load,
    refreshQuietly,
    noteSent,
    drawerOpen,
    closeDrawer,
  };
}
