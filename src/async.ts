/** The waiting helpers live in the driver kit (one toolkit for drivers and core alike). */
export { serialized, withDeadline } from '../drivers/kit/wait.js';
