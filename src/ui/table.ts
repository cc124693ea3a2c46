import { TmachineError } from '../errors.js';
/** Plain column tables, as `docker` and `docker-machine` print them. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** `--format '{{.Name}} {{.State}}'`: Go-template-style field substitution. */
export function formatTemplate(template: string, fields: Record<string, string>): string {
  return template
    .replace(/\\t/g, '\t')
    .replace(/\\n/g, '\n')
    .replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_m, key: string) => {
      if (!(key in fields)) {
        throw new TmachineError(`unknown field .${key} in --format`, { hint: `fields: ${Object.keys(fields).join(', ')}` });
      }
      return fields[key] ?? '';
    });
}
