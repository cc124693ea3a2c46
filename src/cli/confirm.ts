/** Asking before a destructive command: on a TTY a y/n question, elsewhere one line saying to pass -y. */
import { createInterface } from 'node:readline/promises';
import { TmachineError } from '../errors.js';

export async function confirmOrRefuse(command: string, question: string): Promise<boolean> {
  if (!process.stdin.isTTY) throw new TmachineError(`${command} needs confirmation`, { hint: 'pass -y to go ahead without asking' });
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} Are you sure? (y/n): `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
