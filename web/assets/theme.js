// Light or dark: the system's choice (prefers-color-scheme) unless the user picked one, which is
// kept in this browser. On app pages a switch in the nav flips it.
const KEY = 'roost.theme';

function stored() {
  try {
    const v = localStorage.getItem(KEY);
    return v === 'light' || v === 'dark' ? v : null;
  } catch {
    return null;
  }
}

const system = window.matchMedia('(prefers-color-scheme: dark)');
const effective = () => stored() || (system.matches ? 'dark' : 'light');

function apply() {
  const theme = effective();
  document.documentElement.dataset.theme = theme;
  document.documentElement.style.colorScheme = theme;
  const btn = document.getElementById('theme-toggle');
  if (btn) {
    // One name, pressed or not: screen readers hear "Dark mode, pressed".
    btn.setAttribute('aria-pressed', String(theme === 'dark'));
    btn.querySelector('.theme-label').textContent = 'Dark mode';
    btn.title = theme === 'dark' ? 'Switch to light mode' : 'Switch to dark mode';
  }
}

export function setTheme(theme) {
  try {
    localStorage.setItem(KEY, theme);
  } catch {
    /* storage off: it lasts for this page */
  }
  apply();
}

apply();
system.addEventListener('change', apply);

// The switch, in the app's nav (the sign-in pages follow the stored or system choice).
const foot = document.querySelector('.nav-foot');
if (foot && !document.getElementById('theme-toggle')) {
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.id = 'theme-toggle';
  btn.className = 'btn btn-ghost btn-small theme-toggle';
  btn.dataset.testid = 'theme-toggle';
  btn.setAttribute('aria-label', 'Dark mode');
  const icon = document.createElement('span');
  icon.setAttribute('aria-hidden', 'true');
  icon.textContent = '◐';
  const label = document.createElement('span');
  label.className = 'theme-label';
  btn.append(icon, label);
  btn.addEventListener('click', () => setTheme(effective() === 'dark' ? 'light' : 'dark'));
  foot.insertBefore(btn, foot.querySelector('.nav-logout'));
  apply();
}
