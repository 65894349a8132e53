export { EXIT } from './exitCodes.js';
export { CliError } from './cliError.js';
