/** Exit codes of the nano-vm command (docs/cli.md). */
export const EXIT = {
  /** The command did its job (for `run`: the run reached a terminal state, whatever the outcome). */
  OK: 0,
  /** The thing checked is bad: invalid program (validate), bad bundle (verify), guard error (expr), unexpected failure. */
  FAILED: 1,
  /** The command was refused: invalid program or input for `run`, bad arguments, unreadable files. */
  REFUSED: 2,
} as const;
