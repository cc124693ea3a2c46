// `npm test`: checks what the tests need, builds, then runs every test with Node 22+ (the
// project's Node 24 when the system Node is older). A green run means the e2e tests ran:
// without what they need it fails with one line, unless TMACHINE_E2E=skip.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { root, runtimeNode } from './node24.js';
import { missingPackages } from './prerequisites.js';

const node = runtimeNode();
if (!node) {
  console.error('Error: the tests need Node 22 or newer (run `npm ci`, which installs Node 24 into node_modules)');
  process.exit(1);
}

if (process.env.TMACHINE_E2E !== 'skip') {
  const packages = missingPackages();
  const notRoot = process.getuid?.() !== 0;
  if (packages.length > 0 || notRoot) {
    const what = [...(notRoot ? ['root'] : []), ...packages].join(', ');
    const how = packages.length > 0 ? `run: apt-get install -y ${packages.join(' ')}${notRoot ? ' (as root)' : ''}` : 'run the tests as root';
    console.error(`Error: e2e tests need: ${what} — ${how}; or set TMACHINE_E2E=skip to run the other tests without them`);
    process.exit(1);
  }
}

const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ''}` };
const build = spawnSync(node, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: root, env, stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const manifest = spawnSync(node, [path.join(root, 'scripts', 'manifest.js')], { cwd: root, env, stdio: 'inherit' });
if (manifest.status !== 0) process.exit(manifest.status ?? 1);
const tests = spawnSync(node, [path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...process.argv.slice(2)], { cwd: root, env, stdio: 'inherit' });
process.exit(tests.status ?? 1);
