// Command-line flags with WEFT_* environment equivalents: one table per
// command, one parser. A bad flag is a WEFT_BAD_FLAG naming the flag.

import { WeftError } from '../errors.js';

export interface FlagSpec {
  readonly name: string;
  readonly type: 'string' | 'boolean';
  readonly help: string;
  /** Shown in --help; applied by the caller (defaults may depend on the host). */
  readonly default?: string;
  /** Whether WEFT_<NAME> may set it; true unless said otherwise. */
  readonly env?: boolean;
}

export type FlagValues = Record<string, string | boolean | undefined>;

export function envName(flag: string): string {
  return `WEFT_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export function badFlag(flag: string, why: string): WeftError {
  return new WeftError('WEFT_BAD_FLAG', `--${flag}: ${why}`, { flag });
}

/**
 * Parses `--name value`, `--name=value` and boolean `--name` flags, then
 * fills unset ones from WEFT_<NAME> variables. Positional arguments are
 * returned in order. Unknown flags and missing values throw.
 */
export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv, specs: readonly FlagSpec[]): { values: FlagValues; positionals: string[] } {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: FlagValues = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) throw new WeftError('WEFT_BAD_FLAG', `unknown flag --${name} (see --help)`, { flag: name });
    if (spec.type === 'boolean') {
      if (eq >= 0) {
        const v = arg.slice(eq + 1);
        if (v !== 'true' && v !== 'false') throw badFlag(name, `expects true or false, got "${v}"`);
        values[name] = v === 'true';
      } else values[name] = true;
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || (eq < 0 && value.startsWith('--'))) throw badFlag(name, 'needs a value');
    values[name] = value;
  }
  for (const s of specs) {
    if (values[s.name] !== undefined || s.env === false) continue;
    const v = env[envName(s.name)];
    if (v === undefined || v === '') continue;
    if (s.type === 'boolean') {
      if (v !== 'true' && v !== 'false' && v !== '1' && v !== '0') throw badFlag(s.name, `${envName(s.name)} expects true or false, got "${v}"`);
      values[s.name] = v === 'true' || v === '1';
    } else values[s.name] = v;
  }
  return { values, positionals };
}

export function intFlag(values: FlagValues, name: string, min: number, max: number): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw badFlag(name, `expects a whole number from ${min} to ${max}, got "${String(v)}"`);
  }
  return Number(v);
}

export function stringFlag(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function helpText(usage: string, specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const left = `  --${s.name}${s.type === 'string' ? ' VALUE' : ''}`;
    const env = s.env === false ? '' : ` [${envName(s.name)}]`;
    const def = s.default !== undefined ? ` (default ${s.default})` : '';
    return `${left.padEnd(30)} ${s.help}${def}${env}`;
  });
  return `${usage}\n\nFlags (environment variable in brackets):\n${rows.join('\n')}\n`;
}
