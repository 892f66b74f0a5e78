// How the agent's machine reads in words: its state, memory, idle policy, activity, history.

/** "Ready", "Starting…", "Queued (2nd in line)", "Stopped", "Failed". */
export function machineLabel(status) {
  if (!status) return 'Checking…';
  if (status.stage === 'queued') {
    // The server's sentence names the place: "…; you are 2nd in line, and start when…".
    const place = /you are (\d+(?:st|nd|rd|th)) in line/.exec(status.detail || '');
    return place ? `Queued (${place[1]} in line)` : 'Queued';
  }
  switch (status.state) {
    case 'ready':
      return 'Ready';
    case 'provisioning':
    case 'starting':
      return 'Starting…';
    case 'stopping':
      return 'Stopping…';
    case 'idle_stopped':
      return 'Stopped';
    case 'failed':
      return 'Failed';
    case 'destroying':
    case 'destroyed':
      return 'Deleting…';
    default:
      return 'Unknown';
  }
}

/** A kind for the badge's colour: ok, busy, idle, error. */
export function machineKind(status) {
  if (!status) return 'busy';
  if (status.state === 'ready') return 'ok';
  if (status.state === 'failed') return 'error';
  if (status.state === 'idle_stopped') return 'idle';
  return 'busy';
}

/** 1.2 GB → "1229 MB"; null when not measured. */
export function formatMemory(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0) return null;
  return `${Math.round(bytes / (1024 * 1024))} MB`;
}

/** 1800 → "30 min", 45 → "45 s", 7200 → "2 h" (as the server says it). */
export function formatSpan(secs) {
  if (secs % 3600 === 0 && secs >= 3600) return `${secs / 3600} h`;
  if (secs % 60 === 0 && secs >= 60) return `${secs / 60} min`;
  return `${secs} s`;
}

export function idlePolicyText(policy) {
  const secs = policy && policy.stop_after_secs;
  return Number.isInteger(secs) && secs > 0 ? `stops after ${formatSpan(secs)} without use` : 'never stops for idleness';
}

export function activityText(machine) {
  if (machine.in_use) return 'in use now';
  const ago = machine.last_active_secs_ago;
  if (!Number.isInteger(ago)) return 'not since Roost started';
  if (ago < 45) return 'just now';
  if (ago < 3600) return `${Math.max(1, Math.round(ago / 60))} min ago`;
  return `${Math.round(ago / 3600)} h ago`;
}

/** "12:04" today, "Mar 3, 12:04" on other days. */
export function eventTime(unixSeconds) {
  const d = new Date(Number(unixSeconds) * 1000);
  if (Number.isNaN(d.getTime())) return '';
  const time = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === new Date().toDateString()) return time;
  return `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })}, ${time}`;
}
