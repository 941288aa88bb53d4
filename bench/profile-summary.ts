/**
 * npx tsx bench/profile-summary.ts FILE.cpuprofile [N]: the N functions with the most self time in a
 * V8 CPU profile (from BENCH_CPU_PROFILE=DIR npm run bench …), grouped by package or project file.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
}
const [file, n = '25'] = process.argv.slice(2);
if (!file) {
  console.error('usage: npx tsx bench/profile-summary.ts FILE.cpuprofile [N]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[] };
const total = profile.nodes.reduce((s, node) => s + node.hitCount, 0);
const where = (url: string) => {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (/\/dist\/(roster|chunk-[^/]+)\.js/.test(url)) return 'roster';
  return url.startsWith('node:') ? 'node' : url || '(native)';
};
const byFunction = new Map<string, number>();
const byPlace = new Map<string, number>();
for (const node of profile.nodes) {
  const place = where(node.callFrame.url);
  const key = `${node.callFrame.functionName || '(anonymous)'}  [${place}]`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + node.hitCount);
  byPlace.set(place, (byPlace.get(place) ?? 0) + node.hitCount);
}
const pct = (x: number) => `${((100 * x) / total).toFixed(1).padStart(5)}%`;
console.log('self time by package:');
for (const [k, v] of [...byPlace].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${pct(v)}  ${k}`);
console.log(`\ntop ${n} functions by self time:`);
for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(n))) console.log(`  ${pct(v)}  ${k}`);
