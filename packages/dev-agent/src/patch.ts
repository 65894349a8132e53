/**
 * A proposed patch: structured edits (`write` a whole file, `delete` one) or a unified diff in git
 * format. Which paths it touches is read here, for the allow-list, before anything is applied.
 */
export interface FileEdit {
  path: string;
  action: 'write' | 'delete';
  content?: string;
}

export interface Patch {
  message: string;
  edits?: FileEdit[];
  diff?: string;
}

export interface TouchedPath {
  path: string;
  /** A diff that creates or turns a file into a symbolic link (mode 120000) or a submodule (160000). */
  special?: 'symlink' | 'gitlink';
}

/**
 * Every path a patch touches. For a diff: the paths of `diff --git`, `---`/`+++`, rename and copy
 * lines, with the first component stripped as `git apply -p1` strips it; a path git would quote
 * (unusual characters) is returned quoted, which the allow-list refuses.
 */
export function touchedPaths(patch: Patch): TouchedPath[] {
  const out = new Map<string, TouchedPath>();
  const add = (path: string, special?: TouchedPath['special']): void => {
    const prev = out.get(path);
    out.set(path, { path, ...((special ?? prev?.special) ? { special: special ?? prev!.special! } : {}) });
  };
  for (const e of patch.edits ?? []) add(e.path);
  if (patch.diff !== undefined) {
    let current: string[] = [];
    for (const line of patch.diff.split('\n')) {
      let m: RegExpExecArray | null;
      if ((m = /^diff --git (\S+) (\S+)$/.exec(line))) {
        current = [strip1(m[1]!), strip1(m[2]!)];
        for (const p of current) add(p);
      } else if ((m = /^(?:---|\+\+\+) (.+?)(?:\t.*)?$/.exec(line))) {
        if (m[1] !== '/dev/null') add(strip1(m[1]!));
      } else if ((m = /^(?:rename|copy) (?:from|to) (.+)$/.exec(line))) {
        add(m[1]!);
      } else if ((m = /^(?:new file mode|new mode|old mode|deleted file mode) (\d+)$/.exec(line))) {
        const special = m[1] === '120000' ? 'symlink' : m[1] === '160000' ? 'gitlink' : undefined;
        if (special) for (const p of current) add(p, special);
      }
    }
  }
  return [...out.values()];
}

/** `a/src/x.ts` → `src/x.ts` (git apply -p1); a path without a directory keeps its text, which vetting refuses as a one-segment path only if it is one of the special names. */
function strip1(p: string): string {
  if (p.startsWith('"')) return p;
  const i = p.indexOf('/');
  return i < 0 ? p : p.slice(i + 1);
}
