#!/usr/bin/env node
// Entry point: oclif dispatches to dist/src/commands; every error is printed as one line.
import { run, flush } from '@oclif/core';
import { reportAndExit } from '../dist/src/errors.js';

try {
  await run(process.argv.slice(2), import.meta.url);
  await flush();
} catch (error) {
  await reportAndExit(error);
}
