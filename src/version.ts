// weft's version, from package.json, so every binary and lease reports the same one.

import { readFileSync } from 'node:fs';
import { treePath } from './tree.js';

export const VERSION: string = (JSON.parse(readFileSync(treePath('package.json'), 'utf8')) as { version: string }).version;
