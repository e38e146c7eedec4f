// `weftctl check`'s output, pure: one line per check (verdict, name,
// summary), the fix indented under each warn and fail, a count at the end;
// or the same as one JSON object.

import { type CheckResult, overall } from './checks.js';

export function formatReport(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length)) + 2;
  const indent = ' '.repeat(6 + width);
  const lines = results.flatMap((r) => [`${r.verdict.padEnd(6)}${r.name.padEnd(width)}${r.summary}`, ...(r.fix ? [`${indent}fix: ${r.fix}`] : [])]);
  const counts = (['fail', 'warn', 'ok', 'skip'] as const).map((v) => [v, results.filter((r) => r.verdict === v).length] as const).filter(([, n]) => n > 0);
  return `${lines.join('\n')}\n${overall(results)}: ${counts.map(([v, n]) => `${n} ${v}`).join(', ')}\n`;
}

export function reportJson(results: readonly CheckResult[]): string {
  return `${JSON.stringify({ status: overall(results), checks: results }, null, 2)}\n`;
}
