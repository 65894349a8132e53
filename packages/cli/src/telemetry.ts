import { otelEventHook, type EventObserver } from '@nano-vm/runtime';

/**
 * Spans for CLI runs when the environment asks for OpenTelemetry: `NANO_VM_OTEL=1`, or the
 * standard `OTEL_TRACES_EXPORTER` / `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
 * (a process started with an SDK, e.g. `node --import ./otel-setup.mjs …`). The spans go to the
 * globally registered tracer provider; without `@opentelemetry/api` installed nothing changes.
 */
export async function cliTelemetry(env: NodeJS.ProcessEnv = process.env): Promise<EventObserver | undefined> {
  const wanted =
    env.NANO_VM_OTEL === '1' ||
    [env.OTEL_TRACES_EXPORTER, env.OTEL_EXPORTER_OTLP_ENDPOINT, env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT].some(
      (v) => v !== undefined && v !== '' && v !== 'none',
    );
  return wanted ? otelEventHook() : undefined;
}
