/** Recorded in every genesis event; bump with any change to runtime semantics. */
export const RUNTIME_VERSION = 'nano-vm/0.1.0';
