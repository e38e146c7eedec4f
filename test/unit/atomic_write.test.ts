// Atomic small-file writes: content replaced whole, and a symlink planted at
// the target or at the old fixed temp name is never followed; a link
// replaced by one rename.

import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { symlinkAtomic, writeFileAtomic } from '../../src/host/atomic_write.js';

let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('writeFileAtomic', () => {
  it('replaces the file whole, leaves no temp file, and follows no symlink', () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-atomic-'));
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    const target = join(dir, 'last-subnet');
    symlinkSync(victim, `${target}.tmp`);
    symlinkSync(victim, target);
    writeFileAtomic(target, '198.19.4.0/24\n', 0o644);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(target).isSymbolicLink()).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe('198.19.4.0/24\n');
    expect(lstatSync(target).mode & 0o777).toBe(0o644);
    writeFileAtomic(target, 'again\n', 0o600);
    expect(readFileSync(target, 'utf8')).toBe('again\n');
    expect(readdirSync(dir).sort()).toEqual(['last-subnet', 'last-subnet.tmp', 'victim']);
  });

  it('throws, leaving the old content and no temp file, when the directory is missing', () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-atomic-'));
    expect(() => writeFileAtomic(join(dir, 'nope', 'f'), 'x', 0o644)).toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('symlinkAtomic', () => {
  it('replaces a dangling link with one to the target, and leaves no temp link; a missing directory throws and leaves nothing', () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-atomic-'));
    const link = join(dir, 'bridge');
    symlinkSync(join(dir, 'gone'), link);
    symlinkAtomic('/bin/sh', link);
    expect(readlinkSync(link)).toBe('/bin/sh');
    symlinkAtomic('/bin/true', link);
    expect(readlinkSync(link)).toBe('/bin/true');
    expect(readdirSync(dir)).toEqual(['bridge']);
    expect(() => symlinkAtomic('/bin/sh', join(dir, 'nope', 'bridge'))).toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual(['bridge']);
  });
});
