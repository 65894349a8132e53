/**
 * `@nano-vm/kernel/replay`: re-derive a recorded run from its bundle — byte for byte under its own
 * program and policy, or counterfactually under another — reporting where it diverges.
 */
export { replayBundle, type Divergence, type MissingAnswer, type ReplayOptions, type ReplayResult } from '../replay.js';
export { vaultView, type VaultEntry, type VaultReport, type VaultView } from '../replayVault.js';
