// Page benchmark (issue 3, §8), in Debian's headless Chromium with the default models (each
// sampler on the model trained for it, www/models/default/):
//   - navigation → first painted step (performance mark "unmask:first-step"), cold (fresh
//     browser profile) and warm (second visit, HTTP and wasm caches filled);
//   - committed tokens per second of model time, per sampler, on WebGPU (SwiftShader here) and on
//     the CPU fallback;
//   - the wasm module's size, raw and gzipped.
//   - the digits (issue 14): DDIM steps per second of model time, unguided and with each guidance;
//   - Diffusion-LM (issue 18): reverse steps per second of model time, without and with control.
// Usage: node tests/browser/bench.mjs [--digits | --cpu | --gpu | --first | --vs-native | --ab]   (after
// `trunk build`; --digits: only the digits; --cpu: only the CPU fallback's runs; --gpu: only
// WebGPU's (two builds of the GPU stack side by side, with UNMASK_DIST); --first: only the first
// painted step on WebGPU and where its time goes; --vs-native: the CPU fallback against
// `unmask bench` run in turns, with UNMASK_BIN; --ab: the CPU fallback of two builds in turns,
// with UNMASK_DIST_B); prints Markdown for BENCHMARKS.md.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { dist, launch, listen, removeWebGpu, serveFile } from './harness.mjs';

/** A server of the built page in `root`, cached as a CDN would. */
function staticServer(root) {
  return http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname.slice(1));
    serveFile(res, root, rel, { 'cache-control': 'max-age=3600' });
  });
}
const server = staticServer(dist);
const origin = `${await listen(server)}/`;
const browser = await launch();

/** The runs' rates as a table cell: lowest–highest. */
const range = (xs) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
/** The page's links for 64 tokens of each text sampler on its default model, one step per token
 *  for llada and mdlm (`--vs-native`, `--ab`). */
const SIXTY_FOUR = {
  bd3: 'sampler=bd3&gen=64', llada: 'sampler=llada&gen=64&steps=64',
  mdlm: 'sampler=mdlm&gen=64&steps=64', ar: 'sampler=ar&gen=64',
};

/** Long tasks (> 50 ms) on the page's main thread, recorded from the start. */
async function watchLongTasks(page) {
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  });
}

/** The longest main-thread task after the first painted step (i.e. while generating). */
async function longestTaskWhileGenerating(page) {
  return page.evaluate(() => {
    const first = performance.getEntriesByName('unmask:first-step')[0]?.startTime ?? 0;
    return Math.max(0, ...window.__longTasks.filter(([t]) => t >= first).map(([, d]) => d));
  });
}

/** The page's marks on the way to its first painted step (src/ui/app.rs), in order. */
const PHASES = ['worker-booted', 'backend-ready', 'model-loaded', 'run-started', 'step-received', 'first-step'];

/** Navigates and waits for the first painted step; returns the time of each phase's mark. */
async function firstStep(page, query) {
  await page.goto(`${origin}?${query}`);
  await page.waitForFunction(() => performance.getEntriesByName('unmask:first-step').length > 0, null, { timeout: 300_000 });
  return page.evaluate((phases) => Object.fromEntries(phases.map((p) => [p,
    performance.getEntriesByName(`unmask:${p}`)[0]?.startTime ?? NaN])), PHASES);
}

/** Opens the page without autoplay, waits for the worker's warm-up (ToWorker::Warm: the first
 *  step's kernels compiled while the reader reads), then clicks Run: returns when the warm-up
 *  ended (from navigation) and the time from the click to the first painted step. */
async function firstStepAfterWarmUp(page, query) {
  await page.goto(`${origin}?${query}`);
  await page.waitForFunction(() => performance.getEntriesByName('unmask:warmed').length > 0, null, { timeout: 300_000 });
  await page.waitForSelector('[data-testid=run]:not([disabled])');
  const clicked = await page.evaluate(() => performance.now());
  await page.click('[data-testid=run]');
  await page.waitForFunction(() => performance.getEntriesByName('unmask:first-step').length > 0, null, { timeout: 300_000 });
  return page.evaluate((clicked) => ({
    warmed: performance.getEntriesByName('unmask:warmed')[0].startTime,
    runToFirst: performance.getEntriesByName('unmask:first-step')[0].startTime - clicked,
  }), clicked);
}

/** "a → b" durations between successive marks, for the breakdown row. */
function breakdown(marks) {
  let last = 0;
  return PHASES.filter((p) => Number.isFinite(marks[p])).map((p) => {
    const part = `${p} +${(marks[p] - last).toFixed(0)}`;
    last = marks[p];
    return part;
  }).join(', ');
}

async function done(page) {
  await page.waitForFunction(() => {
    const ls = [...document.querySelectorAll('[data-testid=lane]')];
    return ls.length > 0 && ls.every((l) => ['done', 'failed'].includes(l.dataset.status));
  }, null, { timeout: 600_000 });
  return page.$$eval('[data-testid=lane]', (ls) => ls.map((l) => ({
    tokens: Number(l.dataset.generated), ms: Number(l.dataset.elapsedMs), steps: Number(l.dataset.steps),
  })));
}

/** `--vs-native`: the page's CPU fallback and `unmask bench` (native, one thread: `UNMASK_BIN`)
 *  on the same default models, 64 tokens, one step per token for llada and mdlm, run in turns
 *  (page, native, page, …) so that this machine's drift touches both alike. */
if (process.argv.includes('--vs-native')) {
  const bin = process.env.UNMASK_BIN;
  if (!bin) throw new Error('--vs-native needs UNMASK_BIN=path/to/unmask');
  const { execFileSync } = await import('node:child_process');
  // sampler → [the default model it runs on, the native bench's row label]
  const cases = {
    bd3: ['bd3', 'bd3 (KV cache)'], llada: ['mdlm', 'llada'], mdlm: ['mdlm', 'mdlm'],
    ar: ['ar', 'ar (KV cache)'],
  };
  const rounds = Number(process.env.ROUNDS ?? 3);
  const page_ = {}; const native = {};
  const context = await browser.newContext();
  const page = await context.newPage();
  await removeWebGpu(context, page);
  await page.goto(`${origin}?autoplay=1&seed=2&sampler=bd3&gen=24`);
  await done(page);
  for (let r = 0; r < rounds; r++) {
    for (const [sampler, [model, label]] of Object.entries(cases)) {
      await page.goto(`${origin}?autoplay=1&seed=1&${SIXTY_FOUR[sampler]}`);
      const [lane] = await done(page);
      (page_[sampler] ??= []).push(lane.tokens * 1000 / lane.ms);
      const folder = new URL(`../../www/models/default/${model}/`, import.meta.url).pathname;
      const out = execFileSync(bin, ['bench', '--model', folder,
        '--backends', 'cpu', '--lengths', '64', '--repeats', '1', '--gen-length', '64'], { encoding: 'utf8' });
      const row = out.split('\n').find((l) => l.startsWith(`| cpu | ${label}: 64 tokens |`));
      (native[sampler] ??= []).push(Number(/\| ([\d.]+) tokens\/s/.exec(row)[1]));
    }
  }
  await context.close();
  await browser.close();
  server.close();
  console.log('| sampler (64 tokens) | page, CPU (wasm) | native, 1 thread | page / native (medians) |\n|---|---|---|---|');
  for (const s of Object.keys(cases)) {
    console.log(`| ${s} | ${range(page_[s])} | ${range(native[s])} | ${(100 * median(page_[s]) / median(native[s])).toFixed(0)}% |`);
  }
  process.exit(0);
}

/** `--ab`: the CPU fallback of two builds of the page, this one (`UNMASK_DIST`, else dist/) and
 *  `UNMASK_DIST_B`, served side by side: the 64-token cases of `--vs-native` and Diffusion-LM's
 *  50 steps, the builds in turns within each round so that this machine's drift touches both. */
if (process.argv.includes('--ab')) {
  const other = process.env.UNMASK_DIST_B;
  if (!other) throw new Error('--ab needs UNMASK_DIST_B=path/to/another/dist');
  const serverB = staticServer(path.resolve(other));
  const origins = { a: origin, b: `${await listen(serverB)}/` };
  const cases = {
    ...Object.fromEntries(Object.entries(SIXTY_FOUR).map(([name, q]) => [name, [q, 'tokens']])),
    'Diffusion-LM': ['family=diffusion-lm&prompt=&gen=32&steps=50', 'steps'],
  };
  const rounds = Number(process.env.ROUNDS ?? 3);
  const pages = {};
  for (const [build, o] of Object.entries(origins)) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await removeWebGpu(context, page);
    // One run first, not counted: the wasm engine tiers up.
    await page.goto(`${o}?autoplay=1&seed=2&sampler=bd3&gen=24`);
    await done(page);
    pages[build] = page;
  }
  const rates = {};
  for (let r = 0; r < rounds; r++) {
    for (const [name, [q, unit]] of Object.entries(cases)) {
      for (const [build, o] of Object.entries(origins)) {
        await pages[build].goto(`${o}?autoplay=1&seed=1&${q}`);
        const [lane] = await done(pages[build]);
        ((rates[name] ??= { a: [], b: [] })[build]).push(lane[unit] * 1000 / lane.ms);
      }
    }
  }
  await browser.close();
  server.close();
  serverB.close();
  console.log(`a: ${dist}\nb: ${path.resolve(other)}\n`);
  console.log('| CPU fallback | a, per s | b, per s | b / a (medians) |\n|---|---|---|---|');
  for (const [name, [, unit]] of Object.entries(cases)) {
    const { a, b } = rates[name];
    console.log(`| ${name} (${unit}) | ${range(a)} | ${range(b)} | ${(100 * median(b) / median(a)).toFixed(0)}% |`);
  }
  process.exit(0);
}

const onlyDigits = process.argv.includes('--digits');
const onlyCpu = process.argv.includes('--cpu');
const onlyGpu = process.argv.includes('--gpu');
/** Only the first painted step on WebGPU, cold and warm, with its breakdown. */
const onlyFirst = process.argv.includes('--first');
/** The backends measured: WebGPU (SwiftShader here) and the CPU fallback (`gpu = false`). */
const backends = onlyCpu ? [false] : onlyGpu ? [true] : [true, false];
const rows = [];
const speed = [];
const query = 'autoplay=1&sampler=bd3&gen=24&seed=1';
if (!onlyDigits && !onlyCpu) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await watchLongTasks(page);
  const cold = await firstStep(page, query);
  await done(page);
  const longest = await longestTaskWhileGenerating(page);
  const warm = await firstStep(page, query);
  await done(page);
  await context.close();
  rows.push(`| navigation → first painted step, WebGPU | ${cold['first-step'].toFixed(0)} ms cold | ${warm['first-step'].toFixed(0)} ms warm |`);
  rows.push(`| where it goes, cold (ms after the previous mark) | ${breakdown(cold)} | |`);
  rows.push(`| where it goes, warm | ${breakdown(warm)} | |`);
  const ready = await browser.newContext();
  const reader = await ready.newPage();
  const w = await firstStepAfterWarmUp(reader, query.replace('autoplay=1&', ''));
  await done(reader);
  await ready.close();
  rows.push(`| Run → first painted step after the warm-up (which ended ${w.warmed.toFixed(0)} ms after navigation), WebGPU | ${w.runToFirst.toFixed(0)} ms | run-started → step-received above: the same step with its kernels cold |`);
  rows.push(`| longest main-thread task while generating (bd3, WebGPU) | ${longest.toFixed(0)} ms | 0 = none over 50 ms |`);
}
const samplers = {
  bd3: 'sampler=bd3&gen=24', llada: 'sampler=llada&gen=24&steps=24', mdlm: 'sampler=mdlm&gen=24&steps=24',
  ar: 'sampler=ar&gen=24',
};
for (const gpu of onlyDigits || onlyFirst ? [] : backends) {
  const context = await browser.newContext();
  const page = await context.newPage();
  if (!gpu) await removeWebGpu(context, page);
  // One run first, not counted: it compiles the kernels and lets the wasm engine tier up.
  await page.goto(`${origin}?autoplay=1&seed=2&sampler=bd3&gen=24`);
  await done(page);
  for (const [name, q] of Object.entries(samplers)) {
    await page.goto(`${origin}?autoplay=1&seed=1&${q}`);
    const [lane] = await done(page);
    speed.push(`| ${name} | ${gpu ? 'WebGPU (SwiftShader)' : 'CPU (wasm)'} | ${lane.tokens} | ${lane.steps} | ${lane.ms.toFixed(0)} | ${(lane.tokens * 1000 / lane.ms).toFixed(1)} |`);
  }
  if (!gpu) {
    const warm = await firstStep(page, query);
    rows.push(`| navigation → first painted step, CPU fallback (warm) | ${warm['first-step'].toFixed(0)} ms | ${breakdown(warm)} |`);
  }
  await context.close();
}
const digits = {
  unguided: 'class=7', 'classifier-free w = 1': 'class=7&cfg=1', 'classifier s = 3': 'class=7&classifier_scale=3',
};
const digitSpeed = [];
for (const gpu of onlyFirst ? [] : backends) {
  const context = await browser.newContext();
  const page = await context.newPage();
  if (!gpu) await removeWebGpu(context, page);
  // One run first, not counted: it compiles the backend's kernels (and warms the JIT).
  await page.goto(`${origin}?family=ddpm&autoplay=1&seed=9&steps=10&class=1&classifier_scale=1`);
  await done(page);
  for (const [name, q] of Object.entries(digits)) {
    await page.goto(`${origin}?family=ddpm&autoplay=1&seed=1&steps=50&${q}`);
    const [lane] = await done(page);
    digitSpeed.push(`| DDIM, ${name} | ${gpu ? 'WebGPU (SwiftShader)' : 'CPU (wasm)'} | ${lane.steps} | ${lane.ms.toFixed(0)} | ${(lane.steps * 1000 / lane.ms).toFixed(1)} |`);
  }
  await context.close();
}
// Diffusion-LM (issue 18): reverse steps over 32 positions, without and with control.
const words = {
  'clamping, no control': '', 'control toward the Bible, S = 3': '&control=bible&control_scale=3',
};
const wordSpeed = [];
for (const gpu of onlyFirst || onlyDigits ? [] : backends) {
  const context = await browser.newContext();
  const page = await context.newPage();
  if (!gpu) await removeWebGpu(context, page);
  // One run first, not counted: it compiles the backend's kernels (and warms the JIT).
  await page.goto(`${origin}?family=diffusion-lm&autoplay=1&prompt=&gen=32&seed=9&steps=10&control=austen`);
  await done(page);
  for (const [name, q] of Object.entries(words)) {
    await page.goto(`${origin}?family=diffusion-lm&autoplay=1&prompt=&gen=32&seed=1&steps=50${q}`);
    const [lane] = await done(page);
    wordSpeed.push(`| Diffusion-LM, ${name} | ${gpu ? 'WebGPU (SwiftShader)' : 'CPU (wasm)'} | ${lane.steps} | ${lane.ms.toFixed(0)} | ${(lane.steps * 1000 / lane.ms).toFixed(1)} |`);
  }
  await context.close();
}
await browser.close();
server.close();

const wasm = readFileSync(path.join(dist, 'unmask-web_bg.wasm'));
const gz = zlib.gzipSync(wasm, { level: 9 });
console.log('| measure | value | |\n|---|---|---|');
console.log(rows.join('\n'));
console.log(`| wasm module | ${(wasm.length / 1e6).toFixed(1)} MB raw | ${(gz.length / 1e6).toFixed(1)} MB gzip -9 |`);
console.log('\n| sampler | backend | tokens | steps | ms | tokens/s |\n|---|---|---|---|---|---|');
console.log(speed.join('\n'));
console.log('\n| digits run | backend | steps | ms | steps/s |\n|---|---|---|---|---|');
console.log(digitSpeed.join('\n'));
console.log('\n| Diffusion-LM run | backend | steps | ms | steps/s |\n|---|---|---|---|---|');
console.log(wordSpeed.join('\n'));
