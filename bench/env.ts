// Benchmark settings read from the environment, checked: a bad value stops
// the run with a message naming the variable.

/** The integer in `name`, or `dflt` when unset or empty; throws when it is not an integer >= min. */
export function intEnv(name: string, dflt: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
  return n;
}
