import { existsSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NanoVmError } from '@nano-vm/kernel';
import { generateSigningKey } from '@nano-vm/runtime';
import { EXIT } from '../exitCodes.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const KEYGEN = defineCommand({
  name: 'keygen',
  summary:
    'Writes a new Ed25519 key pair for signed receipts (docs/trace-format.md §10): <prefix>.key (mode 0600) and <prefix>.pub; never overwrites a file.',
  args: '',
  options: {
    out: {
      type: 'string',
      short: 'o',
      value: '<dir | file prefix>',
      defaultText: '.',
      description:
        'where to write the keys: into a directory the prefix is nano-vm-<first 16 hex digits of the key id>',
    },
    json: { type: 'boolean', default: false, description: 'one object: {key_id, private_key, public_key}' },
  },
  run: keygenCommand,
});
export const KEYGEN_USAGE = usageText(KEYGEN);

/**
 * Writes a new Ed25519 key pair for signed receipts (docs/trace-format.md §10): `<prefix>.key`
 * (PKCS#8 PEM, mode 0600) and `<prefix>.pub` (SubjectPublicKeyInfo PEM). Into a directory (the
 * current one by default) the prefix is `nano-vm-<first 16 hex digits of the key id>`. Never
 * overwrites a file.
 */
export async function keygenCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(KEYGEN, argv);
  if (positionals.length) throw new NanoVmError('E_USAGE', KEYGEN_USAGE);
  const out = values.out ?? '.';
  const pair = generateSigningKey();
  const intoDir = out.endsWith('/') || (existsSync(out) && statSync(out).isDirectory());
  if (intoDir && !existsSync(out)) throw new NanoVmError('E_FILE', `cannot write keys into ${out}: no such directory`);
  const prefix = intoDir ? join(out, `nano-vm-${pair.key_id.slice('ed25519:'.length, 24)}`) : out;
  const privateFile = `${prefix}.key`;
  const publicFile = `${prefix}.pub`;
  for (const f of [privateFile, publicFile])
    if (existsSync(f)) throw new NanoVmError('E_KEY_EXISTS', `${f} exists; keygen never overwrites a key file`);
  // 'wx' fails if the file appeared meanwhile; the private key is created 0600, never widened.
  write(privateFile, pair.privatePem, 0o600);
  try {
    write(publicFile, pair.publicPem, 0o644);
  } catch (e) {
    unlinkSync(privateFile);
    throw e;
  }
  if (values.json)
    process.stdout.write(
      JSON.stringify({ key_id: pair.key_id, private_key: privateFile, public_key: publicFile }) + '\n',
    );
  else
    process.stdout.write(
      [
        `key id   ${pair.key_id}`,
        `private  ${privateFile}  (mode 0600; keep it secret: run --sign ${privateFile})`,
        `public   ${publicFile}  (give it to verifiers: verify --key ${publicFile}, or put it in a --keys directory)`,
        '',
      ].join('\n'),
    );
  return EXIT.OK;
}

function write(file: string, text: string, mode: number): void {
  try {
    writeFileSync(file, text, { flag: 'wx', mode });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new NanoVmError('E_KEY_EXISTS', `${file} exists; keygen never overwrites a key file`);
    throw new NanoVmError(
      'E_FILE',
      `cannot write ${file}: ${code === 'ENOENT' ? 'no such directory' : (e as Error).message}`,
    );
  }
}
