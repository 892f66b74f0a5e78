// Settings: the user's own Anthropic or OpenAI key. Roost checks it with the provider before
// saving; the page only ever shows its last four characters, and whether it still works.
import { api, formatTime } from '/assets/api.js';

const PROVIDERS = { anthropic: 'Anthropic', openai: 'OpenAI' };

export function initLlmKey({ root }) {
  const $ = (sel) => root.querySelector(sel);
  const form = $('#llm-key-form');
  const errorEl = $('#llm-key-error');
  const doneEl = $('#llm-key-done');
  const saveBtn = $('#llm-key-save');
  const removeBtn = $('#llm-key-remove');
  const keyInput = form.elements.namedItem('key');

  function say(error, done = '') {
    errorEl.textContent = error || '';
    errorEl.hidden = !error;
    doneEl.textContent = done;
    doneEl.hidden = !done;
    if (error) keyInput.setAttribute('aria-invalid', 'true');
    else keyInput.removeAttribute('aria-invalid');
  }

  function render(data) {
    const key = data && data.key;
    $('#llm-key-none').hidden = !!key;
    $('#llm-key-current').hidden = !key;
    saveBtn.textContent = key ? 'Check and replace' : 'Check and save';
    $('#llm-key-billing').textContent = data && data.debited
      ? 'Calls with your own key still cost credits on this server.'
      : 'Calls with your own key cost no credits here; your provider bills you for them.';
    if (!key) return;
    $('#llm-key-provider').textContent = PROVIDERS[key.provider] || key.provider;
    $('#llm-key-last4').textContent = `…${key.last4}`;
    $('#llm-key-model').textContent = key.model;
    $('#llm-key-added').textContent = formatTime(key.added_at);
    $('#llm-key-status').textContent = key.status === 'failing'
      ? `Failing: ${PROVIDERS[key.provider] || 'the provider'} refused it on ${formatTime(key.failing_since)}. Replace or remove it.`
      : 'Working';
    $('#llm-key-status').dataset.status = key.status;
  }

  async function load() {
    try {
      render(await api('GET', '/api/me/llm-key', undefined, { redirectOn401: true }));
    } catch (err) {
      say(`Couldn't load your key. ${err.message}`);
    }
  }

  form.addEventListener('input', () => say(''));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const provider = form.elements.namedItem('provider').value;
    const key = keyInput.value.trim();
    const model = form.elements.namedItem('model').value.trim();
    if (!key) return say(`Paste your ${PROVIDERS[provider]} API key.`);
    saveBtn.disabled = true;
    doneEl.hidden = false;
    doneEl.textContent = `Checking the key with ${PROVIDERS[provider]}…`;
    try {
      const saved = await api('PUT', '/api/me/llm-key', { provider, key, model: model || null }, { redirectOn401: true });
      form.reset();
      render(saved);
      say('', `Saved. Your agent now uses your ${PROVIDERS[provider]} key with ${saved.key.model}.`);
    } catch (err) {
      say(err.message);
    } finally {
      saveBtn.disabled = false;
    }
  });

  removeBtn.addEventListener('click', async () => {
    if (!window.confirm("Remove your own key? Your agent goes back to this server's model.")) return;
    removeBtn.disabled = true;
    try {
      await api('DELETE', '/api/me/llm-key', undefined, { redirectOn401: true });
      render({ key: null, debited: false });
      await load();
      say('', "Removed. Your agent uses this server's model again.");
    } catch (err) {
      say(`Couldn't remove the key. ${err.message}`);
    } finally {
      removeBtn.disabled = false;
    }
  });

  load();
}
