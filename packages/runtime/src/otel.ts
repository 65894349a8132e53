/**
 * OpenTelemetry: one span per step attempt, under one span per run, built from the trace events as
 * they are appended (RunOptions.onEvent). `@opentelemetry/api` is an optional peer dependency: it is
 * only ever imported here, dynamically, so a host without it runs exactly as before. No SDK is
 * bundled; the host registers its own (or passes a tracer).
 *
 * Span times are the events' own timestamps (the injected clock), so telemetry and trace agree to
 * the millisecond. A tool or parallel step's span runs from its step_started to its result; an llm
 * step has no step_started (docs/trace-format.md §4), so its span starts at the previous event.
 */
import type { Attributes, Context, Span, Tracer } from '@opentelemetry/api';
import { NanoVmError, type TraceEvent } from '@nano-vm/kernel';
import { RUNTIME_VERSION } from './version.js';

export type OtelApi = typeof import('@opentelemetry/api');

/** The hook RunOptions.onEvent takes: called after each event is stored. */
export type EventObserver = (event: TraceEvent, runId: string) => void;

/** `@opentelemetry/api` when it is installed, else null. Any other load failure is a real error and is thrown. */
export async function loadOtelApi(
  load: () => Promise<unknown> = () => import('@opentelemetry/api'),
): Promise<OtelApi | null> {
  try {
    return (await load()) as OtelApi;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') return null;
    throw e;
  }
}

export interface OtelOptions {
  /** Default: the global tracer provider's `nano-vm` tracer (a no-op until the host registers an SDK). */
  tracer?: Tracer;
  /** The parent of every run span; default: the active context. */
  context?: Context;
}

/**
 * An onEvent hook that turns a run's events into spans, or undefined when `@opentelemetry/api` is
 * not installed: `runProgram({ ..., onEvent: await otelEventHook() })`.
 */
export async function otelEventHook(
  opts: OtelOptions = {},
  load?: () => Promise<unknown>,
): Promise<EventObserver | undefined> {
  const api = await loadOtelApi(load);
  return api ? stepSpans(api, opts) : undefined;
}

interface RunSpans {
  run: Span;
  ctx: Context;
  /** Open tool and parallel step spans by parent/step. */
  open: Map<string, { span: Span; ctx: Context }>;
  prevTs: string;
}

const at = (ts: string): Date => new Date(ts);
const key = (step: string, parent?: string): string => (parent === undefined ? step : `${parent}/${step}`);

/** The event → span mapping, for one or many concurrent runs (kept apart by run id). */
export function stepSpans(api: OtelApi, opts: OtelOptions = {}): EventObserver {
  const tracer = opts.tracer ?? api.trace.getTracer('nano-vm', RUNTIME_VERSION);
  const runs = new Map<string, RunSpans>();
  const fail = (span: Span, code: string, message: string) =>
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: `${code}: ${message}` });

  return (e, runId) => {
    if (e.type === 'run_started') {
      const run = tracer.startSpan(
        `nano-vm.run ${e.program_id}`,
        {
          startTime: at(e.ts),
          attributes: {
            'nano_vm.run_id': runId,
            'nano_vm.program_id': e.program_id,
            'nano_vm.program_hash': e.program_hash,
            'nano_vm.model': e.model.id,
            'nano_vm.model_scripted': e.model.scripted,
            'nano_vm.runtime_version': e.runtime_version,
          },
        },
        opts.context ?? api.context.active(),
      );
      runs.set(runId, {
        run,
        ctx: api.trace.setSpan(opts.context ?? api.context.active(), run),
        open: new Map(),
        prevTs: e.ts,
      });
      return;
    }
    let r = runs.get(runId);
    if (!r) {
      // A run continued by this process (resumed at a wait, or recovered): its genesis was seen by
      // another process, so its spans here hang under a continuation span of the run.
      const run = tracer.startSpan(
        'nano-vm.run (continued)',
        { startTime: at(e.ts), attributes: { 'nano_vm.run_id': runId, 'nano_vm.continued': true } },
        opts.context ?? api.context.active(),
      );
      r = { run, ctx: api.trace.setSpan(opts.context ?? api.context.active(), run), open: new Map(), prevTs: e.ts };
      runs.set(runId, r);
    }
    const parentCtx = (parent?: string) => (parent !== undefined ? (r.open.get(key(parent))?.ctx ?? r.ctx) : r.ctx);
    const base = (step: string, kind: string, attempt: number | undefined, parent: string | undefined): Attributes => ({
      'nano_vm.run_id': runId,
      'nano_vm.step_id': step,
      'nano_vm.step_kind': kind,
      ...(attempt !== undefined ? { 'nano_vm.attempt': attempt } : {}),
      ...(parent !== undefined ? { 'nano_vm.parent_step_id': parent } : {}),
    });
    switch (e.type) {
      case 'step_started': {
        const span = tracer.startSpan(
          `nano-vm.step ${e.step}`,
          {
            startTime: at(e.ts),
            attributes: {
              ...base(e.step, e.kind, e.attempt, e.parent),
              'nano_vm.visit': e.visit,
              ...(e.tool !== undefined
                ? { 'nano_vm.tool': e.tool, 'nano_vm.idempotency_key': e.idempotency_key ?? '' }
                : {}),
            },
          },
          parentCtx(e.parent),
        );
        r.open.set(key(e.step, e.parent), { span, ctx: api.trace.setSpan(parentCtx(e.parent), span) });
        break;
      }
      case 'step_completed':
      case 'step_failed': {
        const k = key(e.step, e.parent);
        const opened = e.kind === 'llm' ? undefined : r.open.get(k);
        r.open.delete(k);
        const span =
          opened?.span ??
          tracer.startSpan(
            `nano-vm.step ${e.step}`,
            { startTime: at(r.prevTs), attributes: base(e.step, e.kind, e.attempt, e.parent) },
            parentCtx(e.parent),
          );
        const attrs: Attributes = { 'nano_vm.status': e.type === 'step_completed' ? 'completed' : 'failed' };
        if (e.kind === 'llm') {
          if (e.visit !== undefined) attrs['nano_vm.visit'] = e.visit;
          if (e.projection_hash !== undefined) attrs['nano_vm.projection_hash'] = e.projection_hash;
        }
        if (e.model !== undefined) attrs['nano_vm.model'] = e.model;
        if (e.usage) {
          attrs['nano_vm.input_tokens'] = e.usage.input_tokens;
          attrs['nano_vm.output_tokens'] = e.usage.output_tokens;
        }
        if (e.cost_usd !== undefined) attrs['nano_vm.cost_usd'] = e.cost_usd;
        if (e.type === 'step_completed') {
          if (e.next !== undefined) attrs['nano_vm.next'] = e.next;
        } else {
          attrs['nano_vm.error_code'] = e.error.code;
          fail(span, e.error.code, e.error.message);
        }
        span.setAttributes(attrs);
        span.end(at(e.ts));
        break;
      }
      case 'condition_evaluated': {
        const span = tracer.startSpan(
          `nano-vm.step ${e.step}`,
          {
            startTime: at(r.prevTs),
            attributes: {
              ...base(e.step, 'condition', undefined, undefined),
              'nano_vm.visit': e.visit,
              'nano_vm.chosen_case': e.chosen,
              'nano_vm.next': e.next,
              'nano_vm.status': e.next === '' ? 'failed' : 'completed',
            },
          },
          r.ctx,
        );
        const err = e.guards.find((g) => g.error)?.error;
        if (e.next === '')
          fail(span, err?.code ?? 'E_GUARD_NOT_BOOL', err?.message ?? 'a guard did not evaluate to a bool');
        span.end(at(e.ts));
        break;
      }
      case 'run_resumed':
      case 'wait_timed_out': {
        const span = tracer.startSpan(
          `nano-vm.step ${e.step}`,
          {
            startTime: at(r.prevTs),
            attributes: {
              ...base(e.step, 'wait', undefined, undefined),
              'nano_vm.visit': e.visit,
              'nano_vm.status': e.type === 'run_resumed' ? 'resumed' : 'timed_out',
              ...(e.next !== undefined ? { 'nano_vm.next': e.next } : {}),
            },
          },
          r.ctx,
        );
        if (e.type === 'run_resumed')
          span.setAttributes({
            ...(e.role !== undefined ? { 'nano_vm.role': e.role } : {}),
            ...(e.event_id !== undefined ? { 'nano_vm.event_id': e.event_id } : {}),
          });
        span.end(at(e.ts));
        break;
      }
      case 'run_suspended': {
        // The process may stop here for days: the run span ends, marked suspended; the resume
        // (often another process) continues under a continuation span.
        for (const { span } of r.open.values()) span.end(at(e.ts));
        r.run.setAttributes({
          'nano_vm.status': 'suspended',
          'nano_vm.waiting_step_id': e.step,
          ...(e.role !== undefined ? { 'nano_vm.waiting_role': e.role } : {}),
          ...(e.deadline !== undefined ? { 'nano_vm.wait_deadline': e.deadline } : {}),
        });
        r.run.end(at(e.ts));
        runs.delete(runId);
        return;
      }
      case 'step_retry':
        r.run.addEvent(
          'nano_vm.step_retry',
          { 'nano_vm.step_id': e.step, 'nano_vm.attempt': e.attempt, 'nano_vm.max_attempts': e.max_attempts },
          at(e.ts),
        );
        break;
      case 'step_fallback':
        r.run.addEvent(
          'nano_vm.step_fallback',
          { 'nano_vm.step_id': e.step, ...(e.next !== undefined ? { 'nano_vm.next': e.next } : {}) },
          at(e.ts),
        );
        break;
      case 'visits_exhausted':
        r.run.addEvent(
          'nano_vm.visits_exhausted',
          { 'nano_vm.step_id': e.step, 'nano_vm.max_visits': e.max_visits },
          at(e.ts),
        );
        break;
      case 'transition_rejected':
        r.run.addEvent(
          'nano_vm.transition_rejected',
          {
            'nano_vm.step_id': e.step,
            'nano_vm.requested': e.requested,
            'nano_vm.rule': e.rule,
            'nano_vm.reason': e.reason,
          },
          at(e.ts),
        );
        break;
      case 'run_finished': {
        for (const { span } of r.open.values()) span.end(at(e.ts));
        r.run.setAttributes({
          'nano_vm.status': e.status,
          ...(e.outcome !== undefined ? { 'nano_vm.outcome': e.outcome } : {}),
          ...(e.step !== undefined ? { 'nano_vm.end_step_id': e.step } : {}),
          ...(e.error ? { 'nano_vm.error_code': e.error.code } : {}),
        });
        if (e.status !== 'completed')
          fail(r.run, e.error?.code ?? e.budget?.name ?? e.status, e.error?.message ?? `run ${e.status}`);
        r.run.end(at(e.ts));
        runs.delete(runId);
        return;
      }
      // No span or span event of their own.
      case 'policy_checked':
      case 'values_erased':
      case 'erasure_refused':
        break;
      default: {
        const _exhaustive: never = e;
        throw new NanoVmError('E_INTERNAL', `otel: unknown event type ${(_exhaustive as TraceEvent).type}`);
      }
    }
    r.prevTs = e.ts;
  };
}
