/** Redaction lives below everything that prints (src/redact.ts); re-exported for the UI. */
export { redact, registerSecret } from '../redact.js';
