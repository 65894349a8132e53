/**
 * The path allow-list (docs/dev-agent.md "Paths"). Every path a patch touches gets one verdict;
 * anything but `ok` is blocked by a deny rule of the agent's policy before staging, so the
 * attempt is a recorded blocked action. The same rules decide which files `read_files` may read.
 *
 * Paths are repository-relative with `/` separators. Comparisons of the special names are
 * case-insensitive, since `.GIT/config` is `.git/config` on a case-insensitive file system.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';

export type PathVerdict = 'ok' | 'outside' | 'git_dir' | 'ci_config' | 'symlink' | 'invalid';

export interface VettedPath {
  path: string;
  verdict: PathVerdict;
  detail: string;
}

/** Top-level files and directories that configure CI or run code on git operations. */
const CI_DIRS = ['.github', '.gitlab', '.circleci', '.buildkite', '.husky', '.woodpecker', '.azure-pipelines'];
const CI_FILES = [
  '.gitlab-ci.yml',
  '.travis.yml',
  'azure-pipelines.yml',
  'bitbucket-pipelines.yml',
  'jenkinsfile',
  '.drone.yml',
  '.woodpecker.yml',
  'appveyor.yml',
  '.appveyor.yml',
  'cloudbuild.yaml',
  'cloudbuild.yml',
  '.gitmodules',
];

/** The verdict on a path from its text alone (no file system). */
export function vetPathText(path: string): VettedPath {
  const v = (verdict: PathVerdict, detail: string): VettedPath => ({ path, verdict, detail });
  if (path.length === 0) return v('invalid', 'empty path');
  if (/[\0-\x1f\x7f]/.test(path)) return v('invalid', 'control character in the path');
  if (path.includes('\\')) return v('invalid', "backslash in the path (use '/')");
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.startsWith('~'))
    return v('outside', 'absolute path: paths are relative to the repository');
  const segments = path.split('/');
  if (segments.includes('..')) return v('outside', "'..' segment: paths may not leave or climb the repository");
  if (segments.some((s) => s === '' || s === '.')) return v('invalid', "empty or '.' segment");
  const lower = segments.map((s) => s.toLowerCase());
  // `.git` anywhere: the repository's own, or a nested repository's or submodule's.
  if (lower.some((s) => s === '.git' || s.startsWith('.git ') || /^\.git[.:]/.test(s)))
    return v('git_dir', "inside git's own directory (.git)");
  if (CI_DIRS.includes(lower[0]!) || (lower.length === 1 && CI_FILES.includes(lower[0]!)))
    return v('ci_config', 'CI configuration or git hooks');
  return v('ok', '');
}

/**
 * The verdict on a path in a working tree: the text rules, then no component may be a symbolic
 * link (writing to, through or over a link could reach outside the tree). `root` is the real
 * repository's top level, which is clean when the agent starts, so it is what the staged copy holds.
 */
export function vetPath(root: string, path: string): VettedPath {
  const textual = vetPathText(path);
  if (textual.verdict !== 'ok') return textual;
  const link = symlinkOnPath(root, path);
  if (link !== null) return { path, verdict: 'symlink', detail: `'${link}' is a symbolic link` };
  return textual;
}

/** The first component of `path` under `root` that is a symbolic link, or null. */
export function symlinkOnPath(root: string, path: string): string | null {
  const segments = path.split('/');
  for (let i = 1; i <= segments.length; i++) {
    const prefix = segments.slice(0, i).join('/');
    try {
      if (lstatSync(join(root, prefix)).isSymbolicLink()) return prefix;
    } catch {
      return null; // does not exist (yet): nothing below it exists either
    }
  }
  return null;
}
