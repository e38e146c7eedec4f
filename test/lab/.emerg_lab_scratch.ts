import { Lab } from './lab.js';
const lab = await Lab.create({ nodes: 1, name: 'emerg' });
console.log('DIR', lab.dir);
await new Promise((r) => setTimeout(r, 60_000));
