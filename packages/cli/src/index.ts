export { EXIT } from './exitCodes.js';
