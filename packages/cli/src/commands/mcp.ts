import { NanoVmError } from '@nano-vm/kernel';
import { EXIT } from '../exitCodes.js';
import { defineCommand, parseCommandArgs, usageText } from '../commandSpec.js';

export const MCP = defineCommand({
  name: 'mcp',
  summary:
    'Serves programs, runs and proof to MCP clients (Claude Code, IDE agents) over stdio or Streamable HTTP, with principals, scopes and an audit log (docs/mcp.md).',
  args: '',
  options: {
    stdio: {
      type: 'boolean',
      default: false,
      description: 'serve one client on stdin/stdout, as the config’s stdio principal',
    },
    http: {
      type: 'boolean',
      default: false,
      description:
        'serve Streamable HTTP at http://<host>:<port>/mcp; callers authenticate with bearer tokens from the config',
    },
    host: {
      type: 'string',
      value: '<address>',
      defaultText: '127.0.0.1, or the config’s http.host',
      description:
        'the address to listen on (--http). Anything but loopback exposes the server: put TLS in front of it',
    },
    port: {
      type: 'string',
      value: '<n>',
      defaultText: '8765, or the config’s http.port',
      description: 'the port to listen on (--http); 0 picks a free one (printed on stderr)',
    },
    config: {
      type: 'string',
      value: '<file.json>',
      description:
        'the server config (docs/mcp.md "Configuration"): store, model, tools, policy, principals with hashed tokens, limits, gateway servers',
    },
    store: {
      type: 'string',
      value: '<sqlite:path | memory:>',
      defaultText: 'the config’s store, or sqlite:./.nano-vm/nano-vm.db',
      description: 'where runs, programs and the audit log are kept (overrides the config)',
    },
    model: {
      type: 'string',
      value: '<spec>',
      description: 'the model runs use (overrides the config; docs/models.md)',
    },
    tools: { type: 'string', value: '<module>', description: 'the tools module runs use (overrides the config)' },
    policy: { type: 'string', value: '<file>', description: 'the policy every run is held to (overrides the config)' },
  },
  run: mcpCommand,
});
export const MCP_USAGE = usageText(MCP);

export async function mcpCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(MCP, argv);
  if (positionals.length || values.stdio === values.http)
    throw new NanoVmError('E_USAGE', `give exactly one of --stdio or --http\n${MCP_USAGE}`);
  const { loadServerConfig, parseServerConfig, openHost, serveStdio, startHttp } = await import('@nano-vm/mcp');
  const config = values.config ? loadServerConfig(values.config) : parseServerConfig({}, 'nano-vm-mcp.json');
  if (values.store !== undefined) config.store = values.store;
  else if (!values.config && process.env.NANO_VM_STORE) config.store = process.env.NANO_VM_STORE;
  if (values.model !== undefined) config.model = values.model;
  if (values.tools !== undefined) config.tools = values.tools;
  if (values.policy !== undefined) config.policy = values.policy;
  let port = config.http.port;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new NanoVmError('E_USAGE', `--port must be a port number (0-65535), not ${values.port}`);
  }
  if (values.http && config.principals.length === 0)
    throw new NanoVmError(
      'E_MCP_CONFIG',
      'nano-vm mcp --http needs principals in its --config (every HTTP caller authenticates with a bearer token; docs/mcp.md)',
    );
  const host = await openHost(config);
  try {
    if (values.stdio) {
      await serveStdio(host);
      return EXIT.OK;
    }
    const running = await startHttp(host, {
      host: values.host ?? config.http.host,
      port,
      allowedHosts: config.http.allowed_hosts,
      allowedOrigins: config.http.allowed_origins,
    });
    process.stderr.write(`nano-vm mcp: listening on ${running.url}\n`);
    await new Promise<void>((res) => {
      process.once('SIGINT', res);
      process.once('SIGTERM', res);
    });
    await running.close();
    return EXIT.OK;
  } finally {
    await host.close();
  }
}
