// Preloaded with --import: records every module URL the process loads into $TMACHINE_MODULE_TRACE.
import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';

const out = process.env.TMACHINE_MODULE_TRACE;
if (out) {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const result = nextResolve(specifier, context);
      appendFileSync(out, result.url + '\n');
      return result;
    },
  });
}
