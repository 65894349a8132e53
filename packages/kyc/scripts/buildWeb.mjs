// Bundles what the browser app imports into packages/kyc/web-dist/ (served at /assets/):
//   vendor.js   preact, preact/hooks, htm and uPlot from node_modules, as one ES module (one
//               preact instance for the hooks and the renderer; no CDN, the app works offline)
//   verify.js   @nano-vm/kernel/verify, the kernel's own browser-safe verifier (chain, receipt,
//               Ed25519 signature), so the audit panel re-checks a run with the code `nano-vm verify` runs
//   uPlot.min.css
// The app's own modules in packages/kyc/web/ are served as they are (no build step for them).
// Run by the root `npm run build` after tsc (the verifier is bundled from the compiled kernel).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const out = fileURLToPath(new URL('../web-dist/', import.meta.url));
const require = createRequire(import.meta.url);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const common = {
  absWorkingDir: pkg,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
};

await build({
  ...common,
  stdin: {
    contents: [
      "export { h, render, Fragment } from 'preact';",
      "export { useState, useEffect, useMemo, useRef, useCallback } from 'preact/hooks';",
      "export { html } from 'htm/preact';",
      "export { default as uPlot } from 'uplot';",
    ].join('\n'),
    resolveDir: pkg,
    sourcefile: 'vendor-entry.js',
    loader: 'js',
  },
  outfile: `${out}vendor.js`,
});

await build({ ...common, entryPoints: ['@nano-vm/kernel/verify'], outfile: `${out}verify.js` });

copyFileSync(require.resolve('uplot/dist/uPlot.min.css'), `${out}uPlot.min.css`);
console.log('wrote packages/kyc/web-dist/ (vendor.js, verify.js, uPlot.min.css)');
