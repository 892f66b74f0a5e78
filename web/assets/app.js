// App frame: checks the session, routes between views, owns the socket.
import { api, goToLogin } from '/assets/api.js';
import { RoostSocket } from '/assets/socket.js';
import { initChat } from '/assets/chat.js';
import { initSettings } from '/assets/settings.js';
import { initUsage } from '/assets/usage.js';
import { initIntegrations } from '/assets/integrations.js';
import { initLowBalance } from '/assets/low-balance.js';
import { initMachinePanel } from '/assets/machine-panel.js';
import { initAdmin } from '/assets/admin.js';
import { initFiles } from '/assets/files.js';

const ROUTES = {
  '/': 'chat',
  '/chat': 'chat',
  '/usage': 'usage',
  '/files': 'files',
  '/billing': 'usage',
  '/integrations': 'integrations',
  '/settings': 'settings',
  '/admin': 'admin',
};
const TITLES = { chat: 'Chat', usage: 'Usage', integrations: 'Integrations', files: 'Files', settings: 'Settings', admin: 'Admin' };
const CONN_LABELS = { connected: 'Connected', connecting: 'Connecting', reconnecting: 'Reconnecting', offline: 'Offline', failed: 'Stopped', stopped: 'Stopped' };

const bootEl = document.getElementById('boot');
const bootText = document.getElementById('boot-text');
const bootRetry = document.getElementById('boot-retry');
const appEl = document.getElementById('app');

async function boot() {
  bootText.textContent = 'Loading…';
  bootRetry.hidden = true;
  let me;
  try {
    me = await api('GET', '/api/me');
  } catch (err) {
    if (err.status === 401) {
      goToLogin();
      return;
    }
    bootText.textContent = `Couldn't load Roost: ${err.message}`;
    bootRetry.hidden = false;
    return;
  }
  start(me);
}
bootRetry.addEventListener('click', boot);

function start(me) {
  const socket = new RoostSocket();

  // Connection indicator
  const conn = document.querySelector('[data-testid="conn"]');
  const connLabel = conn.querySelector('.conn-label');
  const renderConn = () => {
    const state = socket.state;
    conn.dataset.state = state;
    connLabel.textContent = CONN_LABELS[state] || state;
    conn.title = `Agent connection: ${CONN_LABELS[state] || state}`;
  };
  socket.addEventListener('state', renderConn);
  renderConn();
  initMachinePanel({ socket, root: appEl });

  // Signed-in user
  const emailEl = document.querySelector('[data-testid="user-email"]');
  emailEl.textContent = me.email;
  emailEl.title = me.email;

  let loggingOut = false;
  async function logout() {
    if (loggingOut) return;
    loggingOut = true;
    try {
      await api('POST', '/api/auth/logout');
    } catch (err) {
      if (err.status !== 401) {
        loggingOut = false;
        window.alert(`Couldn't log out. ${err.message}`);
        return;
      }
    }
    socket.stop();
    try {
      localStorage.removeItem('roost.currentSession');
    } catch {
      /* ignore */
    }
    location.replace('/login');
  }
  document.querySelector('[data-testid="logout"]').addEventListener('click', logout);

  const viewEls = Object.fromEntries(
    [...document.querySelectorAll('[data-view]')].map((el) => [el.dataset.view, el]),
  );
  initLowBalance(document.getElementById('app-low-balance'));
  const views = {
    chat: initChat({ socket, root: viewEls.chat }),
    settings: initSettings({ root: viewEls.settings, me, onLogout: logout }),
    usage: initUsage({ root: viewEls.usage }),
    integrations: initIntegrations({ root: viewEls.integrations }),
    files: initFiles({ root: viewEls.files }),
  };
  if (me.is_admin) {
    views.admin = initAdmin({ root: viewEls.admin, me });
    document.querySelector('[data-testid="nav-admin"]').hidden = false;
  }

  let current = null;
  function route() {
    let name = ROUTES[location.pathname] || 'chat';
    if (!views[name]) name = 'chat';
    if (name === current) return;
    if (current && views[current]) views[current].hide();
    for (const [n, el] of Object.entries(viewEls)) el.hidden = n !== name;
    for (const a of document.querySelectorAll('.nav-links a')) {
      const on = a.dataset.route === name;
      a.classList.toggle('active', on);
      if (on) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `${TITLES[name]} · Roost`;
    current = name;
    if (views[name]) views[name].show();
  }

  // Client-side navigation for in-app links.
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest('a[data-link]');
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !(url.pathname in ROUTES)) return;
    ev.preventDefault();
    if (url.pathname !== location.pathname) history.pushState({}, '', url.pathname);
    route();
  });
  window.addEventListener('popstate', route);

  bootEl.hidden = true;
  appEl.hidden = false;
  route();
  socket.start();
}

boot();
