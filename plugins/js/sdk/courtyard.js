// The Courtyard guest SDK for JavaScript plugins (built with componentize-js).
//
// Wraps the imports of wit/ the way the Rust SDK does: JSON state helpers, events,
// logging, config, and errors for the `plugin-error` variants. A plugin module exports
//
//   export const handler = courtyard.handler({ "operation-name": (ctx, input) => output, ... });
//
// and build.mjs bundles it (esbuild) and turns it into a component (componentize-js).

import * as wstate from 'courtyard:plugin/state@0.1.0';
import * as wevents from 'courtyard:plugin/events@0.1.0';
import * as wlog from 'courtyard:plugin/log@0.1.0';
import * as wconfig from 'courtyard:plugin/config@0.1.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An error that reaches the caller as one of the `plugin-error` variants. */
export class PluginError extends Error {
  constructor(tag, message) {
    super(message);
    this.tag = tag;
    this.val = message;
    // The variant value, as the component's `err` payload.
    this.payload = { tag, val: message };
  }
}

export const invalidInput = (m) => new PluginError('invalid-input', m);
export const notFound = (m) => new PluginError('not-found', m);
export const conflict = (m) => new PluginError('conflict', m);
export const unavailable = (m) => new PluginError('unavailable', m);
export const internal = (m) => new PluginError('internal', m);

/** Turns an error from a host import into a plugin error. */
function hostError(e) {
  const p = e && e.payload;
  if (p && p.tag === 'unavailable') return unavailable(p.val);
  if (p && (p.tag === 'too-large' || p.tag === 'too-many')) return conflict(`limit reached: ${p.val}`);
  return internal(p ? `${p.tag}: ${p.val}` : String(e));
}

function host(fn) {
  try {
    return fn();
  } catch (e) {
    throw hostError(e);
  }
}

/** The plugin's per-community key-value state, as JSON values. */
export const state = {
  get(key) {
    const raw = host(() => wstate.get(key));
    return raw === undefined ? undefined : JSON.parse(decoder.decode(raw));
  },
  put(key, value) {
    host(() => wstate.set(key, encoder.encode(JSON.stringify(value))));
  },
  delete(key) {
    host(() => wstate.delete(key));
  },
  list(prefix, after, limit = 100) {
    return host(() => wstate.scan(prefix, after, limit)).map((e) => [e.key, JSON.parse(decoder.decode(e.value))]);
  },
};

/** Events into the community's event stream. */
export function emit(kind, payload) {
  host(() => wevents.emit(kind, JSON.stringify(payload)));
}

/** Structured log records. */
export const log = {
  info: (message, fields = {}) => wlog.write('info', message, Object.entries(fields).map(([k, v]) => [k, String(v)])),
  warn: (message, fields = {}) => wlog.write('warn', message, Object.entries(fields).map(([k, v]) => [k, String(v)])),
};

/** The community's configuration (the manifest's defaults merged in). */
export function config() {
  return JSON.parse(wconfig.get());
}

/**
 * The `handler` export: dispatches operations to `operations[name](ctx, input)`.
 * `ctx` has `community`, `plugin`, `operation`, `idempotencyKey`, `nowMs` (a Number)
 * and `requestId`.
 */
export function handler(operations) {
  return {
    invoke(wctx, operation, input) {
      const ctx = {
        community: wctx.community,
        plugin: wctx.plugin,
        operation: wctx.operation,
        idempotencyKey: wctx.idempotencyKey,
        nowMs: Number(wctx.nowMs),
        requestId: wctx.requestId,
      };
      const op = operations[operation];
      if (!op) throw notFound(`${ctx.plugin} has no operation ${JSON.stringify(operation)}`);
      try {
        return JSON.stringify(op(ctx, JSON.parse(input)));
      } catch (e) {
        if (e instanceof PluginError) throw e;
        throw internal(e && e.stack ? `${e}\n${e.stack}` : String(e));
      }
    },
  };
}
