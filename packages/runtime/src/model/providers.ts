/** The real model providers and what configures them: the runtime's public surface for them. */
export * from './modelSpec.js';
export * from './openaiChat.js';
export * from './anthropicMessages.js';
export * from './fallbackChain.js';
export * from './priceTable.js';
export * from './retryPolicy.js';
export { defaultHttpDeps, type HttpDeps } from './providerHttp.js';
