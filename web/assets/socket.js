// WebSocket client for /ws: reconnects with exponential backoff and ?resume=<epoch>:<lastSeq>,
// tracks Roost's own status events, and matches req/res frames by id.
//
// Event numbers (roostSeq) count within an epoch that roost.ready names; a new epoch (Roost
// restarted, or the agent link was retired) starts again from 1. The cursor is therefore the
// pair, and a roost.gap (the server cannot replay from our cursor) moves it to the server's.
//
// A link can die without a close (a laptop lid, a dropped Wi-Fi): the browser then keeps
// reporting it open. So the page drops it itself when the browser goes offline, or when
// Roost's heartbeat (roost.tick, sent with every ping; roost.ready says how often) stops
// coming, and reconnects with resume as after any close.
//
// Emits (EventTarget):
//   "state"  detail: {state}            connecting | connected | reconnecting | offline | failed | stopped
//   "status" detail: payload            roost.status payload
//   "ready"  detail: payload            roost.ready payload
//   "gap"    detail: payload            roost.gap payload
//   "roost-error" detail: payload       roost.error payload {code, message}
//   "event"  detail: frame              any other relayed event frame
//   "closed" detail: {code, reason, wasReady, retryInMs}
import { api, goToLogin, uuid } from '/assets/api.js';

const MAX_BACKOFF_MS = 10_000;
const BASE_BACKOFF_MS = 500;
const REQUEST_TIMEOUT_MS = 30_000;
// A link is dead once nothing was heard for this many heartbeats (plus a grace for slow paths).
const MISSED_HEARTBEATS = 1.5;
const HEARTBEAT_GRACE_MS = 2_000;

export class RoostSocket extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.state = 'connecting';
    this.ready = false;
    this.readyInfo = null;
    this.lastStatus = null;
    this.lastError = null;
    this.lastSeq = null;
    this.epoch = null; // the epoch lastSeq counts in
    this.readyEpoch = null; // the epoch of the current socket
    this.attempt = 0;
    this.everConnected = false;
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.retryTimer = null;
    this.stopped = false;
    this.retryAt = 0;
    // The user stopped their agent: reconnecting would start it again, so the socket waits for
    // their Restart (restartAgent), as it does for a failed agent.
    this.parked = false;
    this.heartbeatMs = 0; // from roost.ready; 0 = not watched
    this.deadTimer = null;

    window.addEventListener('online', () => {
      if (this.state === 'offline' && !this.stopped) this.connectNow();
    });
    window.addEventListener('offline', () => {
      // Whatever the socket says, nothing gets through now: say so at once.
      if (this.ws) this.abandon('You are offline.');
      else this.setState('offline');
    });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state });
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let url = `${proto}//${location.host}/ws`;
    if (this.everConnected && this.lastSeq !== null && this.epoch) {
      url += `?resume=${encodeURIComponent(`${this.epoch}:${this.lastSeq}`)}`;
    }
    return url;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /** Close for good (e.g. on logout). */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) {
      try {
        this.ws.close(1000, 'bye');
      } catch {
        /* ignore */
      }
    }
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    if (this.stopped || this.parked) return;
    if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) return;
    this.setState(this.everConnected || this.attempt > 0 ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    let opened = false;

    ws.addEventListener('open', () => {
      opened = true;
      this.everConnected = true;
      // Open but not yet usable: the agent may still be waking up.
      this.setState('connecting');
    });

    ws.addEventListener('message', (ev) => {
      if (this.ws !== ws) return;
      this.heard();
      this.onFrame(ev.data);
    });

    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      this.gone(ev, opened);
    });
  }

  /** Something arrived: the link is alive for another few heartbeats. */
  heard() {
    clearTimeout(this.deadTimer);
    if (!this.ready || !this.heartbeatMs) return;
    const within = this.heartbeatMs * MISSED_HEARTBEATS + HEARTBEAT_GRACE_MS;
    this.deadTimer = setTimeout(() => this.abandon('No heartbeat from Roost.'), within);
  }

  /** The link is dead though the browser has not noticed: drop it and go on as after a close. */
  abandon(reason) {
    const ws = this.ws;
    if (!ws) return;
    try {
      ws.close(4000, 'link dead');
    } catch {
      /* ignore */
    }
    this.gone({ code: 1006, reason }, true);
  }

  /** The socket closed, or was given up on: fail what waited on it and reconnect. */
  gone(ev, opened) {
    clearTimeout(this.deadTimer);
    this.ws = null;
    const wasReady = this.ready;
    this.ready = false;
    this.lastStatus = null;
    this.failPending('The connection to your agent was lost.');
    if (this.stopped) return;
    if (ev.code === 4401) {
      // The server says this session is not (or no longer) authorized.
      goToLogin({ expired: true });
      return;
    }
    // The user stopped their agent (in this tab or another): reconnecting would start it
    // again, so wait for their Restart.
    if (ev.code === 4100) this.parked = true;
    if (!opened) {
      // Could be an expired session (handshake rejected with 401).
      api('GET', '/api/me')
        .then(() => this.afterClose(ev, wasReady))
        .catch((err) => {
          if (err.status === 401) goToLogin();
          else this.afterClose(ev, wasReady);
        });
      return;
    }
    this.afterClose(ev, wasReady);
  }

  afterClose(ev, wasReady) {
    // A crash loop ended in failed: reconnecting would only be refused again. The user's
    // Restart (restartAgent) reconnects.
    const failed = this.lastError && this.lastError.code === 'agent_failed';
    if (failed) this.setState('failed');
    else if (this.parked) this.setState('stopped');
    const delay = failed || this.parked ? 0 : this.scheduleRetry();
    this.emit('closed', { code: ev.code, reason: ev.reason, wasReady, retryInMs: delay });
  }

  scheduleRetry() {
    if (this.stopped) return 0;
    if (navigator.onLine === false) {
      this.setState('offline');
      return 0;
    }
    const exp = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** this.attempt);
    const delay = Math.round(exp * (0.75 + Math.random() * 0.25));
    this.attempt += 1;
    this.setState('reconnecting');
    clearTimeout(this.retryTimer);
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    return delay;
  }

  onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    if (Number.isInteger(frame.roostSeq) && this.readyEpoch) {
      if (this.epoch !== this.readyEpoch || this.lastSeq === null || frame.roostSeq > this.lastSeq) {
        this.epoch = this.readyEpoch;
        this.lastSeq = frame.roostSeq;
      }
    }

    if (frame.type === 'res') {
      const p = this.pending.get(frame.id);
      if (!p) return;
      this.pending.delete(frame.id);
      clearTimeout(p.timer);
      if (frame.ok) p.resolve(frame.payload || {});
      else {
        const e = frame.error || {};
        const err = new Error(e.message || 'The request failed.');
        err.code = e.code || 'error';
        p.reject(err);
      }
      return;
    }

    if (frame.type !== 'event') return;
    const payload = frame.payload || {};
    switch (frame.event) {
      case 'roost.status':
        this.lastStatus = payload;
        this.lastError = null;
        this.emit('status', payload);
        break;
      case 'roost.ready':
        this.readyEpoch = typeof payload.epoch === 'string' ? payload.epoch : null;
        this.ready = true;
        this.readyInfo = payload;
        this.heartbeatMs = Number.isInteger(payload.heartbeatMs) && payload.heartbeatMs > 0 ? payload.heartbeatMs : 0;
        this.heard();
        this.lastError = null;
        this.attempt = 0;
        this.setState('connected');
        this.emit('ready', payload);
        break;
      case 'roost.gap':
        // Our cursor is from elsewhere: continue from the server's, and reload history.
        this.epoch = this.readyEpoch;
        this.lastSeq = Number.isInteger(payload.lastSeq) ? payload.lastSeq : null;
        this.emit('gap', payload);
        break;
      case 'roost.tick':
        break; // heard() has done its work
      case 'roost.error':
        this.lastError = payload;
        this.emit('roost-error', payload);
        break;
      default:
        this.emit('event', frame);
    }
  }

  /**
   * Start the agent again, then connect to it. An agent the user stopped is started by
   * connecting, as any sleeping agent is woken: the socket is subscribed before the start
   * begins, so the page is shown every stage. A running or failed one is restarted
   * (POST /api/machine/restart; a failed agent refuses sockets until then).
   */
  async restartAgent() {
    if (!this.parked) await api('POST', '/api/machine/restart');
    this.parked = false;
    this.lastError = null;
    this.attempt = 0;
    this.connectNow();
  }

  /** Before the user stops their agent: close without reconnecting (see `parked`). */
  park() {
    this.parked = true;
    clearTimeout(this.retryTimer);
    if (this.ws) {
      try {
        this.ws.close(1000, 'agent stopped');
      } catch {
        /* ignore */
      }
    } else {
      this.setState('stopped');
    }
  }

  /** The stop did not happen: connect again. */
  unpark() {
    if (!this.parked) return;
    this.parked = false;
    this.attempt = 0;
    this.connectNow();
  }

  /** Send a request; resolves with res.payload or rejects with Error{code}. */
  request(method, params, timeoutMs = REQUEST_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.ready) {
        const err = new Error(this.parked
          ? 'Your agent is stopped. Restart it to chat.'
          : 'Not connected to your agent yet. Please wait a moment.');
        err.code = this.parked ? 'agent_stopped' : 'not_connected';
        reject(err);
        return;
      }
      const id = uuid();
      const timer = setTimeout(() => {
        this.pending.delete(id);
        const err = new Error('Your agent did not answer in time.');
        err.code = 'timeout';
        reject(err);
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ type: 'req', id, method, params }));
    });
  }

  failPending(message) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      const err = new Error(message);
      err.code = 'disconnected';
      p.reject(err);
      this.pending.delete(id);
    }
  }
}
