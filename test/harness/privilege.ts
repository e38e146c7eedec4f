// Root-only tests skip with a stated reason when unprivileged; test/run.mjs
// fails a root run in which anything skipped.

/** A reason to skip, or false when running as root. */
export function rootSkipReason(): false | string {
  return process.getuid?.() === 0 ? false : 'needs root (network namespaces, TUN devices)';
}
