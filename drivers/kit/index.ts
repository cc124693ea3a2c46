/**
 * The driver kit: everything a driver (built in or third party) imports, and the only part
 * of tmachine a driver may import. It imports nothing of src/.
 *
 *   import { defineDriver, DriverError, waitFor, waitForSsh, z } from 'tmachine/kit';
 */
export { z } from 'zod';
export * from './driver.js';
export * from './errors.js';
export * from './wait.js';
export * from './options.js';
export { debug, registerSecret } from './log.js';
export { shellQuote } from './shell.js';
