/** `--timings`: how long each step took on each host, as a table (stderr). */
export function formatTimings(steps: Array<{ host: string; step: string; ms: number; outcome: string }>): string {
  const rows = steps.filter((s) => s.outcome !== 'skipped').map((s) => [s.host, s.step, (s.ms / 1000).toFixed(2), s.outcome]);
  const header = ['HOST', 'STEP', 'SECONDS', 'OUTCOME'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
