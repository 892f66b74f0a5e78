// What the chat view reads from OpenClaw: stage names, session keys, message text.

// Each stage as a plain sentence: what is happening, not what the code waits for.
const STAGE_LABELS = {
  queued: 'Waiting for a free spot to start your agent',
  provisioning: 'Setting up your agent',
  installing_runtime: 'Installing your agent (only the first time)',
  preparing_state: "Getting your agent's files ready",
  creating_app: 'Setting up your agent',
  creating_volume: "Creating your agent's storage",
  creating_machine: "Creating your agent's computer",
  starting: 'Starting your agent',
  waiting_ready: 'Your agent is waking up',
  restarting: 'Restarting your agent',
  connecting: 'Connecting to your agent',
  resuming: 'Waking your agent',
  waking: 'Waking your agent',
  ready: 'Your agent is ready',
  stopped: 'Your agent is stopped',
  failed: 'Your agent could not start',
};

export function stageLabel(stage) {
  if (!stage) return 'Connecting to your agent';
  return STAGE_LABELS[stage] || 'Starting your agent';
}

/** Stages whose detail is written for people (the place in line); the rest read like a log. */
export function stageDetailIsPlain(stage) {
  return stage === 'queued' || stage === 'failed';
}

/** "12 s", "1 min 5 s". */
export function durationWords(secs) {
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  const rest = s % 60;
  return rest ? `${m} min ${rest} s` : `${m} min`;
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
