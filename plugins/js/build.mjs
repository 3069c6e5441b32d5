// Builds one JavaScript plugin into a Wasm component:
//   node build.mjs <plugin-dir> <out.wasm> <wit-dir>
// esbuild bundles <plugin-dir>/plugin.js with the SDK (`courtyard-sdk`; the `courtyard:plugin/*` imports
// stay external: they are the component's imports), then componentize-js turns the
// bundle into a component of the `plugin` world.
import { build } from 'esbuild';
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [pluginDir, out, witDir] = process.argv.slice(2);
if (!pluginDir || !out || !witDir) {
  console.error('usage: node build.mjs <plugin-dir> <out.wasm> <wit-dir>');
  process.exit(2);
}
const bundle = join(mkdtempSync(join(tmpdir(), 'courtyard-js-')), 'bundle.js');
await build({
  entryPoints: [resolve(pluginDir, 'plugin.js')],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  external: ['courtyard:plugin/*'],
  // Plugins import the SDK as 'courtyard-sdk', wherever they live.
  alias: { 'courtyard-sdk': resolve(import.meta.dirname, 'sdk/courtyard.js') },
  outfile: bundle,
  logLevel: 'warning',
});
const { component } = await componentize({
  sourcePath: bundle,
  witPath: resolve(witDir),
  worldName: 'plugin',
  // Only the imports a plugin may have: no wasi:http.
  disableFeatures: ['http', 'fetch-event'],
});
writeFileSync(out, component);
console.error(`built ${out} (${component.length} bytes)`);
