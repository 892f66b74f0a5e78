// What the chat view reads from OpenClaw: stage names, session keys, message text.

const STAGE_LABELS = {
  provisioning: 'Setting up your agent',
  installing_runtime: 'Installing the agent runtime',
  creating_app: 'Setting up your agent',
  creating_volume: "Creating your agent's storage",
  creating_machine: "Creating your agent's machine",
  starting: 'Starting your agent',
  waiting_ready: 'Waiting for your agent to come online',
  connecting: 'Connecting to your agent',
  resuming: 'Waking your agent',
  waking: 'Waking your agent',
};

export function stageLabel(stage) {
  if (!stage) return 'Connecting to your agent';
  if (STAGE_LABELS[stage]) return STAGE_LABELS[stage];
  const s = String(stage).replace(/[_.-]+/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** OpenClaw canonicalizes "K" to "agent:main:K"; compare both forms. */
export function canonicalKey(key) {
  return String(key ?? '').replace(/^agent:[^:]+:/, '');
}
export function sameSession(a, b) {
  return a != null && b != null && (a === b || canonicalKey(a) === canonicalKey(b));
}

/** Text of an OpenClaw message ({content:[{type:"text",text}]} or a string). */
export function messageText(message) {
  if (!message) return null;
  if (typeof message === 'string') return message;
  const c = message.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) {
    return c
      .filter((p) => p && (p.type === 'text' || p.type === undefined) && typeof p.text === 'string')
      .map((p) => p.text)
      .join('');
  }
  if (typeof message.text === 'string') return message.text;
  return null;
}
