/** One error family: every error class the packages export is a NanoVmError, and each carries a documented code. */
import { describe, expect, it } from 'vitest';
import * as kernel from '@nano-vm/kernel';
import {
  AnalyzeError,
  CanonicalJsonError,
  ERROR_CODES,
  NanoVmError,
  ReceiptError,
  SealedDecisionError,
  analyzeRuns,
  canonicalJson,
  computeReceipt,
  isErrorCode,
} from '@nano-vm/kernel';
import * as runtime from '../src/internal.js';
import {
  MemoryStore,
  ModelError,
  ScriptError,
  StoreError,
  ToolError,
  ToolRegistry,
  modelFromSpec,
  parseModelScript,
} from '../src/internal.js';

const errorClasses = (mod: Record<string, unknown>): [string, unknown][] =>
  Object.entries(mod).filter(([, v]) => typeof v === 'function' && v.prototype instanceof Error);

/** The error `f` throws (or its promise rejects with). */
async function caught(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

describe('one error family', () => {
  it('every error class the kernel and the runtime export extends NanoVmError', () => {
    const classes = [...errorClasses(kernel), ...errorClasses(runtime)];
    expect(classes.map(([name]) => name).sort()).toEqual(
      expect.arrayContaining([
        'AnalyzeError',
        'CanonicalJsonError',
        'ModelError',
        'ReceiptError',
        'ScriptError',
        'SealedDecisionError',
        'StoreError',
        'ToolError',
      ]),
    );
    const outside = classes.filter(
      ([, c]) => c !== NanoVmError && !((c as typeof Error).prototype instanceof NanoVmError),
    );
    expect(outside.map(([name]) => name)).toEqual([]);
  });

  it('each error class, raised by its own API, is a NanoVmError with a documented code and its class name', async () => {
    const raised: [unknown, new (...args: never[]) => Error][] = [
      [await caught(() => canonicalJson({ a: Number.NaN })), CanonicalJsonError],
      [await caught(() => computeReceipt([])), ReceiptError],
      [await caught(() => analyzeRuns([])), AnalyzeError],
      [new SealedDecisionError('route', 1, 'sealed'), SealedDecisionError],
      [await caught(() => modelFromSpec('gpt:4', { env: {} })), ModelError],
      [await caught(() => parseModelScript('answers: 3')), ScriptError],
      [await caught(() => new ToolRegistry([{ name: 'not a name', run: () => 1 }])), ToolError],
      [await caught(() => new MemoryStore().finish('run-nope', 'completed', null)), StoreError],
    ];
    for (const [e, cls] of raised) {
      expect(e).toBeInstanceOf(cls);
      expect(e).toBeInstanceOf(NanoVmError);
      const err = e as NanoVmError<string>;
      expect(err.name).toBe(cls.name);
      expect(isErrorCode(err.code), `${cls.name}: ${err.code}`).toBe(true);
    }
    expect(raised.map(([e]) => (e as NanoVmError<string>).code)).toEqual([
      'E_NOT_JSON',
      'E_NO_GENESIS',
      'E_NO_RUNS',
      'E_REPLAY_SEALED',
      'E_MODEL_SPEC',
      'E_SCRIPT_FORMAT',
      'E_TOOL_DEFINITION',
      'E_STORE_NO_RUN',
    ]);
  });

  it('an error carries its location, its issues and its cause', async () => {
    const notJson = (await caught(() => canonicalJson({ a: [1, Number.POSITIVE_INFINITY] }))) as CanonicalJsonError;
    expect(notJson.location).toEqual({ path: '/a/1' });
    expect(notJson.path).toBe('/a/1');
    const sealed = new SealedDecisionError('route', 2, 'sealed input');
    expect(sealed.location).toEqual({ step: 'route' });
    expect(sealed.issues).toEqual([
      { code: 'E_REPLAY_SEALED', severity: 'error', step: 'route', message: 'sealed input' },
    ]);

    const cause = new Error('disk full');
    const e = new NanoVmError('E_FILE', 'cannot write out.json', { cause, location: { file: 'out.json' } });
    expect(e.cause).toBe(cause);
    expect(kernel.formatLocation(e.location!)).toBe('out.json');
    // The older form, issues as the third argument, still reads the same.
    const issue = { code: 'E_NO_END', severity: 'error' as const, message: 'no end step' };
    expect(new NanoVmError('E_PROGRAM_INVALID', 'invalid', [issue]).issues).toEqual([issue]);
  });

  it('withMessage adds context and keeps the code, the issues, the location, and the original as cause', () => {
    const issue = { code: 'E_INPUT_SCHEMA', severity: 'error' as const, message: 'bad', path: '/amount' };
    const inner = new StoreError('E_STORE_DUPLICATE_RUN', 'run r1 already exists');
    const outer = new NanoVmError('E_INPUT_INVALID', 'input is invalid', { issues: [issue], location: { seq: 3 } });
    expect(inner.withMessage(`input.json: ${inner.message}`)).toMatchObject({
      code: 'E_STORE_DUPLICATE_RUN',
      message: 'input.json: run r1 already exists',
      cause: inner,
    });
    expect(outer.withMessage('x')).toMatchObject({ code: 'E_INPUT_INVALID', issues: [issue], location: { seq: 3 } });
  });

  it('a model adapter may report a code of its own, which stays as given', () => {
    const e = new ModelError('E_CARD_DECLINED', 'declined');
    expect(e.code).toBe('E_CARD_DECLINED');
    expect(isErrorCode(e.code)).toBe(false);
    expect(isErrorCode('E_MODEL_AUTH')).toBe(true);
    expect(Object.keys(ERROR_CODES)).toContain('E_INTERNAL');
  });
});
