// Writes oclif.manifest.json so the CLI starts without importing every command module
// (what `oclif manifest` does, without pulling in the oclif packaging toolchain).
import { Config } from '@oclif/core';
import { writeFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const manifestFile = path.join(root, 'oclif.manifest.json');
rmSync(manifestFile, { force: true });
const config = await Config.load(root);
const plugin = config.plugins.get(config.pjson.name);
const manifest = { ...plugin.manifest };
writeFileSync(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
console.log(`manifest: ${Object.keys(manifest.commands).length} commands`);
