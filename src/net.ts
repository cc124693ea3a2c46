/** TCP reachability and backoff live in the driver kit (one toolkit for drivers and core alike). */
export { backoff, tcpAnswers, waitForTcp } from '../drivers/kit/wait.js';
