/** `swarm bootstrap -f` rejects a bad cluster file with one line naming file:line, before creating anything. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempStore } from '../support/cli.js';

const store = tempStore();
afterAll(() => store.cleanup());

async function bootstrapWith(lines: string[]) {
  const file = path.join(store.path, 'cluster.yml');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  const result = await runCli(['swarm', 'bootstrap', '-f', file], { store: store.path });
  return { result, file };
}

const base = ['name: lab', 'driver: { name: docker }'];

describe('swarm bootstrap -f with a bad cluster file', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['an unknown field', [...base, 'managers: 1', 'wrokers: 2'], /cluster\.yml:4: wrokers: unknown field/],
    ['a wrong type', [...base, 'managers: 1', 'workers:', '  - count: two'], /cluster\.yml:5: workers\[0\]\.count: expected a positive integer/],
    ['an even manager count', [...base, 'managers: 2'], /cluster\.yml:3: managers: 2 managers cannot keep quorum/],
    [
      'a node name used twice',
      [...base, 'managers: 1', 'nodes:', '  - { name: db1, role: worker, driver: { name: generic, ip-address: 192.0.2.1 } }', '  - { name: db1, role: worker, driver: { name: generic, ip-address: 192.0.2.2 } }'],
      /cluster\.yml:6: nodes\[1\]\.name: .*db1.*(twice|more than once|already)/,
    ],
  ];
  for (const [what, lines, pattern] of cases) {
    it(`${what}: one line with the line number, nothing created`, async () => {
      const { result } = await bootstrapWith(lines);
      expect(result.code).not.toBe(0);
      const stderr = result.stderr.trim().split('\n');
      expect(stderr).toHaveLength(1);
      expect(stderr[0]).toMatch(pattern);
      expect(fs.readdirSync(path.join(store.path, 'machines'))).toEqual([]);
    });
  }
});
