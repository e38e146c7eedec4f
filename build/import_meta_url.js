// Injected into each CommonJS bundle by build/bundle.mjs: import.meta.url, which CommonJS lacks, is the bundle file's URL.
export const import_meta_url = require('node:url').pathToFileURL(__filename).href;
