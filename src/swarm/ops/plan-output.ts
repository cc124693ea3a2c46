/** How the day-2 commands say what a plan did, or under --dry-run would do, per host. */
import type { PlanReport } from '../../plan/index.js';

/** "HOST: would run: STEP" lines (cluster-wide steps under the cluster's name). */
export function dryRunLines(report: PlanReport, clusterName: string): string[] {
  return report.results.map((r) => `${r.host ?? clusterName}: ${r.outcome === 'already' ? 'already done' : r.outcome === 'would-run' ? 'would run' : r.outcome}: ${r.title}`);
}
