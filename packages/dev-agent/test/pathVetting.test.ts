import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { touchedPaths, vetPath, vetPathText } from '@nano-vm/dev-agent';

describe('the path allow-list', () => {
  it.each([
    ['src/price.ts', 'ok'],
    ['docs/.github.md', 'ok'],
    ['../outside', 'outside'],
    ['src/../../etc/passwd', 'outside'],
    ['src/../x.ts', 'outside'],
    ['/etc/passwd', 'outside'],
    ['C:/Windows/x', 'outside'],
    ['~/x', 'outside'],
    ['.git/config', 'git_dir'],
    ['.GIT/config', 'git_dir'],
    ['vendor/lib/.git/hooks/pre-commit', 'git_dir'],
    ['.github/workflows/ci.yml', 'ci_config'],
    ['.GitHub/workflows/ci.yml', 'ci_config'],
    ['.gitlab-ci.yml', 'ci_config'],
    ['.husky/pre-commit', 'ci_config'],
    ['Jenkinsfile', 'ci_config'],
    ['.gitmodules', 'ci_config'],
    ['', 'invalid'],
    ['src//x.ts', 'invalid'],
    ['./src/x.ts', 'invalid'],
    ['src\\x.ts', 'invalid'],
    ['src/x\0.ts', 'invalid'],
    ['src/x\n.ts', 'invalid'],
  ])('%j is %s', (path, verdict) => {
    expect(vetPathText(path).verdict).toBe(verdict);
  });

  it('refuses a path that goes through, or is, a symbolic link in the tree', () => {
    const root = mkdtempSync(join(tmpdir(), 'vet-'));
    mkdirSync(join(root, 'src'));
    writeFileSync(join(root, 'src', 'a.ts'), '');
    symlinkSync(tmpdir(), join(root, 'escape'));
    symlinkSync('a.ts', join(root, 'src', 'alias.ts'));
    expect(vetPath(root, 'src/a.ts').verdict).toBe('ok');
    expect(vetPath(root, 'src/new/b.ts').verdict).toBe('ok');
    expect(vetPath(root, 'escape/x').verdict).toBe('symlink');
    expect(vetPath(root, 'escape/x').detail).toContain("'escape'");
    expect(vetPath(root, 'src/alias.ts').verdict).toBe('symlink');
  });
});

describe('the paths a patch touches', () => {
  it('reads edits and every path line of a git diff, stripped as git apply -p1 strips them', () => {
    const diff = [
      'diff --git a/src/a.ts b/src/b.ts',
      'similarity index 90%',
      'rename from src/a.ts',
      'rename to src/b.ts',
      '--- a/src/a.ts',
      '+++ b/src/b.ts',
      '@@ -1 +1 @@',
      '-x',
      '+y',
      'diff --git a/new.txt b/new.txt',
      'new file mode 100644',
      '--- /dev/null',
      '+++ b/new.txt',
      '@@ -0,0 +1 @@',
      '+hello',
      '--- a/../outside',
      '+++ b/../outside',
    ].join('\n');
    expect(touchedPaths({ message: 'm', diff }).map((t) => t.path)).toEqual([
      'src/a.ts',
      'src/b.ts',
      'new.txt',
      '../outside',
    ]);
    expect(touchedPaths({ message: 'm', edits: [{ path: 'x.ts', action: 'delete' }] })).toEqual([{ path: 'x.ts' }]);
  });

  it('marks a diff that makes a symbolic link or a submodule', () => {
    const link = [
      'diff --git a/l b/l',
      'new file mode 120000',
      '--- /dev/null',
      '+++ b/l',
      '@@ -0,0 +1 @@',
      '+/etc',
    ].join('\n');
    expect(touchedPaths({ message: 'm', diff: link })).toEqual([{ path: 'l', special: 'symlink' }]);
    const sub = ['diff --git a/m b/m', 'new file mode 160000', '--- /dev/null', '+++ b/m'].join('\n');
    expect(touchedPaths({ message: 'm', diff: sub })).toEqual([{ path: 'm', special: 'gitlink' }]);
  });
});
