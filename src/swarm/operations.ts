/**
 * Day-to-day swarm operations behind the `swarm` commands, split by concern under ops/:
 * membership and roles, stacks, recovery, shutdown and start, registries, upgrades,
 * backups. This module re-exports them for the commands.
 */
export { openCluster, type OpenCluster } from './ops/cluster.js';
export { joinMachine, leaveMachine, rotateTokens, setAvailability, setLabels, setRole } from './ops/members.js';
export { deployStack, loadImage, removeStack, type DeployOptions } from './ops/stacks.js';
export { recoverCluster } from './ops/recover.js';
export { swarmDown } from './ops/down.js';
