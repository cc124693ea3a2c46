/** The plan runner: named phases with scopes, run with events; renderers live in src/ui/. */
export * from './types.js';
export { runPlan, resultsOf, PlanInterrupted } from './runner.js';
