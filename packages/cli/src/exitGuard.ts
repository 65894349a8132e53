/**
 * The process-level guard behind "the CLI never exits 0 unless every run it started reached a
 * terminal or suspended state and was reported" (issue 11). Commands `track` what they have
 * started (the command itself, each run) and mark it done once it is finished and reported. If
 * the process is about to end with anything still tracked — the event loop ran empty while a
 * promise could never settle, or something called `process.exit()` in the middle of a run (a
 * tool, a library) — the guard reports each unfinished item as E_UNSETTLED, with what to do about
 * it, and makes the exit status 1.
 */
import { writeSync } from 'node:fs';
import { NanoVmError } from '@nano-vm/kernel';
import { errorJson, errorReport, errorText } from './errorExit.js';

export interface Tracked {
  /** Says more about the work (e.g. the run id once it is known) and how to continue it. */
  update(what: string, hint?: string): void;
  /** Finished and reported: no longer reported at exit. */
  done(): void;
}

interface Item {
  what: string;
  hint: string | undefined;
  /** Reported only when nothing more specific is pending (the command around its runs). */
  outer: boolean;
}

const pending = new Map<number, Item>();
let nextId = 0;
let json = false;
let installed = false;

/**
 * Records unfinished work; the guard reports it if the process ends before `done()`. An `outer`
 * item (a whole command) is reported only when none of the work inside it is.
 */
export function track(what: string, hint?: string, outer = false): Tracked {
  const id = nextId++;
  const item: Item = { what, hint, outer };
  pending.set(id, item);
  return {
    update(w, h) {
      item.what = w;
      item.hint = h;
    },
    done() {
      pending.delete(id);
    },
  };
}

/** Installs the guard once per process; with `asJson` the report is `{"error": …}` on stdout. */
export function installExitGuard(asJson = false): void {
  json = asJson;
  if (installed) return;
  installed = true;
  // The event loop ran empty: nothing can settle the tracked work any more.
  process.on('beforeExit', () => report('the process ran out of work to wait for'));
  // process.exit() from anywhere (a tool, a library) while work was in flight.
  process.on('exit', () => report('the process was ended (process.exit)'));
}

function report(why: string): void {
  if (pending.size === 0) return;
  const all = [...pending.values()];
  pending.clear();
  const inner = all.filter((i) => !i.outer);
  const items = inner.length ? inner : all;
  const e = new NanoVmError(
    'E_UNSETTLED',
    `${why} before ${items.length === 1 ? 'this was' : `these ${items.length} were`} finished: ${items
      .map((i) => `${i.what}${i.hint ? `: ${i.hint}` : ''}`)
      .join('; ')}`,
  );
  const r = errorReport(e);
  // Synchronous writes: inside 'exit' nothing asynchronous runs any more. A closed stdout or
  // stderr (EPIPE) must not turn the report into a crash; the exit status still says it.
  try {
    if (json) writeSync(1, JSON.stringify({ error: errorJson(r) }) + '\n');
    else writeSync(2, errorText(r));
  } catch {
    // nowhere left to write
  }
  process.exitCode = r.exit;
}
