// The page in a real browser: Debian's headless Chromium (WebGPU on SwiftShader), driven by
// playwright-core. Serves dist/ (built by `trunk build`) under a sub-path, as a blog would, and
// checks what issue 3 asks: WebGPU and CPU runs that match the CLI, a masked count that never
// rises, embed links that autoplay, trajectories that replay without a model, bad models that
// leave the page working, prompts shown as text, and a CSP the page runs under; and (issue 4) the
// default models: each sampler on the model trained for it, a race across two of them.
// Most tests run the tiny test model (tests/fixtures/tiny, served at ./fixtures/tiny/ beside the
// page) for SwiftShader's sake; those on the default models say so.
//
// Env: UNMASK_BIN (the native CLI, for reference runs), CHROMIUM (default /usr/bin/chromium).
// Screenshots go to tests/browser/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dist, fixtures, launch, listen, removeWebGpu, serveFile } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const artifacts = path.join(here, 'artifacts');
const modelDir = path.join(fixtures, 'tiny');
/** The tiny test model, as a page link names it. */
const TINY = `model=${encodeURIComponent('./fixtures/tiny/')}`;
const defaultModel = (name) => path.join(root, 'www/models/default', name);
const cliBin = process.env.UNMASK_BIN ?? path.join(root, 'target/debug/unmask');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'unmask-browser-'));
/** The page is served here, not at the root, to prove dist/ works from any sub-path. */
const BASE = '/blog/posts/unmask/';
/** The page again, with a worker whose browser reports a full disk (see the server). */
const FULL_DISK = '/full-disk/';
const PROMPT = 'the old man saw a';
/** SwiftShader computes slowly; the tiny model still runs in seconds, so these are generous. */
const LOAD_MS = 120_000;
const RUN_MS = 240_000;

let server;
let origin;
let browser;

before(async () => {
  assert.ok(existsSync(path.join(dist, 'index.html')), 'dist/ is missing: run `trunk build` first');
  mkdirSync(artifacts, { recursive: true });
  server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/host.html') {
      // A blog post embedding the widget the way the Share panel's snippet does.
      const src = `${BASE}?${url.searchParams.get('embed') ?? ''}`.replace(/&/g, '&amp;').replace(/"/g, '&quot;');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>post</title><link rel="icon" href="data:,"><p>My post</p>
        <iframe src="${src}" width="100%" height="700" sandbox="allow-scripts allow-same-origin"></iframe>`);
      return;
    }
    if (url.pathname.startsWith(FULL_DISK)) {
      // The page as a browser with a full disk runs it: its worker's storage estimate says this
      // site may store 1 kB more.
      const rel = decodeURIComponent(url.pathname.slice(FULL_DISK.length));
      if (rel === 'worker.js') {
        const patch = 'StorageManager.prototype.estimate = async () => ({ quota: 1000, usage: 0 });\n';
        res.writeHead(200, { 'content-type': 'text/javascript' });
        res.end(patch + readFileSync(path.join(dist, 'worker.js'), 'utf8'));
        return;
      }
      serveFile(res, dist, rel);
      return;
    }
    if (!url.pathname.startsWith(BASE)) {
      res.writeHead(404).end('not here');
      return;
    }
    const rel = decodeURIComponent(url.pathname.slice(BASE.length));
    if (rel.startsWith('fixtures/')) {
      serveFile(res, fixtures, rel.slice('fixtures/'.length));
      return;
    }
    serveFile(res, dist, rel);
  });
  origin = await listen(server);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.close();
});

/** Opens the page with `query`; `gpu: false` removes WebGPU from the page and its worker;
 *  `host: true` opens it inside a sandboxed iframe of another page (returned as `frame`);
 *  `media` sets the context's reducedMotion / colorScheme. */
async function open(query, { gpu = true, host = false, media = {} } = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 1000 }, ...media });
  const page = await context.newPage();
  const problems = [];
  const dialogs = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  if (!gpu) await removeWebGpu(context, page);
  if (host) {
    await page.goto(`${origin}/host.html?embed=${encodeURIComponent(query)}`);
    const frame = await (await page.waitForSelector('iframe')).contentFrame();
    return { page, frame, context, problems, dialogs };
  }
  await page.goto(`${origin}${BASE}?${query}`);
  return { page, frame: page, context, problems, dialogs };
}

async function backendOf(page) {
  await page.waitForSelector('[data-testid=backend][data-backend=wgpu], [data-testid=backend][data-backend=cpu], [data-testid=backend][data-backend=failed]', { timeout: LOAD_MS });
  return page.getAttribute('[data-testid=backend]', 'data-backend');
}

async function lanes(page) {
  return page.$$eval('[data-testid=lane]', (ls) => ls.map((l) => ({
    status: l.dataset.status,
    text: l.dataset.text,
    steps: Number(l.dataset.steps),
    masked: JSON.parse(l.dataset.masked || '[]'),
  })));
}

/** Waits for a loaded model, clicks Run unless autoplay does it, and waits for every lane. */
async function run(page, { click = true, ended = ['done', 'failed', 'cancelled', 'imported'] } = {}) {
  if (click) {
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    await page.click('[data-testid=run]');
  }
  await page.waitForFunction((ended) => {
    const ls = [...document.querySelectorAll('[data-testid=lane]')];
    return ls.length > 0 && ls.every((l) => ended.includes(l.dataset.status));
  }, ended, { timeout: RUN_MS });
  return lanes(page);
}

/** The lanes once an imported trajectory replaces them (the finished lanes of an earlier run
 *  would satisfy `run` before the file is read). */
const replay = (page) => run(page, { click: false, ended: ['imported'] });

/** The CLI's run of the same model and settings. */
function cli(args, { model = modelDir, prompt = PROMPT } = {}) {
  const trace = path.join(tmp, `cli-${Math.random().toString(36).slice(2)}.json`);
  execFileSync(cliBin, ['generate', '--model', model, '--prompt', prompt, '--quiet', '--trace', trace, ...args]);
  return JSON.parse(readFileSync(trace, 'utf8'));
}

function assertNeverRises(masked) {
  assert.ok(masked.length > 0, 'no steps');
  for (let i = 1; i < masked.length; i++) {
    assert.ok(masked[i] <= masked[i - 1], `masked count rose at step ${i}: ${masked}`);
  }
  assert.equal(masked.at(-1), 0, `masks left at the end: ${masked}`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

async function assertClean(page, problems) {
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], 'CSP violations');
  assert.deepEqual(problems, [], 'errors in the console');
}

const cases = [
  { name: 'bd3', query: `${TINY}&sampler=bd3&gen=24&seed=7`, args: ['--sampler', 'bd3', '--gen-length', '24', '--seed', '7'] },
  {
    name: 'llada',
    query: `${TINY}&sampler=llada&steps=12&gen=24&temperature=0.7&seed=3`,
    args: ['--sampler', 'llada', '--steps', '12', '--gen-length', '24', '--temperature', '0.7', '--seed', '3'],
  },
];

const webgpuTexts = {};

for (const c of cases) {
  test(`WebGPU: ${c.name} runs, never re-masks, and writes what the CLI writes`, async () => {
    const { page, context, problems } = await open(`${c.query}&prompt=${encodeURIComponent(PROMPT)}`);
    try {
      assert.equal(await backendOf(page), 'wgpu', 'SwiftShader WebGPU should be used');
      const [lane] = await run(page);
      await shot(page, `webgpu-${c.name}`);
      assert.equal(lane.status, 'done');
      assertNeverRises(lane.masked);
      const reference = cli(c.args);
      assert.equal(lane.text, reference.text);
      assert.equal(lane.steps, reference.steps.length);
      webgpuTexts[c.name] = lane.text;
      await assertClean(page, problems);
    } finally {
      await context.close();
    }
  });
}

// The diffusion LMs' decoder transformer (tests/fixtures/dllm: tiny random-weight folders of
// each published architecture, with tokenizer_config.json) on WebGPU against the CLI, each with
// the sampler its authors use (BD3-LM's with the KV cache for the block-causal one).
const dllmCases = [
  { name: 'a2d-qwen3', sampler: 'llada' },
  { name: 'a2d-qwen3-bd3lm', sampler: 'bd3' },
  // The link's attention over config.json's (blocks of 8, not 4), as `--attention` in the CLI.
  { name: 'a2d-qwen3-bd3lm', sampler: 'bd3', blocks: 8 },
  { name: 'a2d-qwen2', sampler: 'llada' },
  { name: 'llada', sampler: 'llada' },
  { name: 'dream', sampler: 'llada' },
];

for (const c of dllmCases) {
  const under = c.blocks ? ` in blocks of ${c.blocks} as its link asks` : '';
  test(`WebGPU: the ${c.name} transformer${under} loads and writes what the CLI writes`, async () => {
    const prompt = 'the cat sat on the';
    const model = `./fixtures/dllm/${c.name}/`;
    // Steps for LLaDA's sampler; BD3-LM's first-hitting takes none (steps would rank instead).
    const steps = c.sampler === 'llada' ? '&steps=8' : '';
    const attention = c.blocks ? `&attention=block-causal&block_size=${c.blocks}` : '';
    const { page, context, problems } = await open(
      `model=${encodeURIComponent(model)}&sampler=${c.sampler}&gen=8${steps}${attention}&temperature=0&seed=1&prompt=${encodeURIComponent(prompt)}`);
    try {
      await loaded(page, `fixtures/dllm/${c.name}/`);
      if (c.blocks) {
        const notes = await page.$$eval('[data-testid=model-note]', (ns) => ns.map((n) => n.textContent));
        assert.ok(notes.some((n) => n.includes(`block-causal (${c.blocks}-token blocks) attention as the link asks`)), notes.join('\n'));
      }
      assert.equal(await backendOf(page), 'wgpu', 'SwiftShader WebGPU should be used');
      const [lane] = await run(page);
      await shot(page, `webgpu-dllm-${c.name}`);
      assert.equal(lane.status, 'done');
      // Greedy: random weights spread their probability thinly, and a draw at temperature 1
      // would turn on SwiftShader's last bits.
      const args = ['--sampler', c.sampler, '--gen-length', '8', '--temperature', '0', '--seed', '1'];
      if (c.sampler === 'llada') args.push('--steps', '8');
      let dir = path.join(fixtures, 'dllm', c.name);
      if (c.blocks) {
        // The CLI takes config.json's block size over --block-length: hand it the folder without one.
        const copy = mkdtempSync(path.join(tmp, 'blocks-'));
        for (const f of readdirSync(dir)) copyFileSync(path.join(dir, f), path.join(copy, f));
        const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
        delete config.block_size;
        writeFileSync(path.join(copy, 'config.json'), JSON.stringify(config));
        dir = copy;
        args.push('--attention', 'block-causal', '--block-length', String(c.blocks));
      }
      const reference = cli(args, { model: dir, prompt });
      assert.equal(lane.text, reference.text);
      await assertClean(page, problems);
    } finally {
      await context.close();
    }
  });
}

const QWEN_PROMPT = 'the cat sat on the';

/** The page on the CPU with the a2d-qwen3 fixture from another origin ("localhost"), LLaDA's
 *  greedy sampler over 8 tokens; `downloads()` counts the requests for its weights. */
async function openQwenElsewhere() {
  const dir = path.join(fixtures, 'dllm', 'a2d-qwen3');
  let downloads = 0;
  const server = http.createServer((req, res) => {
    const name = new URL(req.url, 'http://localhost').pathname.split('/').pop();
    if (name === 'model.safetensors') downloads += 1;
    serveFile(res, dir, name, { 'access-control-allow-origin': '*' });
  });
  const url = `${(await listen(server)).replace('127.0.0.1', 'localhost')}/q/`;
  const opened = await open(
    `backend=cpu&model=${encodeURIComponent(url)}&sampler=llada&steps=8&gen=8&temperature=0&seed=1&prompt=${encodeURIComponent(QWEN_PROMPT)}`);
  return { dir, downloads: () => downloads, server, ...opened };
}

test('the attention picker runs a transformer under another mask, from the weights it holds', async () => {
  // a2d-qwen3 (bidirectional in its config.json) from a server that counts weight downloads.
  const { dir, downloads, server, page, context, problems } = await openQwenElsewhere();
  const prompt = QWEN_PROMPT;
  const cliWith = (...attention) => cli(['--sampler', 'llada', '--steps', '8', '--gen-length', '8', '--temperature', '0',
    '--seed', '1', '--attention', ...attention], { model: dir, prompt }).text;
  const note = (text) => page.waitForFunction((text) => [...document.querySelectorAll('[data-testid=model-note]')]
    .some((n) => n.textContent.includes(text)), text, { timeout: LOAD_MS });
  try {
    await loaded(page, 'localhost');
    assert.match(await page.textContent('[data-testid=attention] option[value=""]'), /as trained: bidirectional/);
    await page.selectOption('[data-testid=attention]', 'causal');
    await note('runs with causal attention');
    assert.match(page.url(), /attention=causal/);
    assert.equal((await run(page))[0].text, cliWith('causal'));
    // Block-causal shows its block size; a new size applies at once.
    await page.selectOption('[data-testid=attention]', 'block-causal');
    await page.waitForSelector('[data-testid=attention-block]', { timeout: LOAD_MS });
    await page.$eval('[data-testid=attention-block]', (input) => {
      input.value = '8';
      input.dispatchEvent(new Event('change', { bubbles: true }));
    });
    await note('block-causal (8-token blocks)');
    assert.match(page.url(), /block_size=8/);
    assert.equal((await run(page))[0].text, cliWith('block-causal', '--block-length', '8'));
    assert.equal(downloads(), 1, 'the weights were downloaded once');
    await assertClean(page, problems);
  } finally {
    await context.close();
    server.close();
  }
});

test('WebGPU: chat with a transformer, two turns, each reply the CLI\'s `unmask chat` reply', async () => {
  // a2d-qwen3's fixture carries Qwen3's ChatML template; LLaDA's greedy sampler as the authors
  // chat with it, shortened to 8 tokens in 8 steps for SwiftShader.
  const name = 'a2d-qwen3';
  const model = `./fixtures/dllm/${name}/`;
  const system = 'Answer briefly.';
  const messages = ['hello there', 'and then?'];
  const { page, context, problems } = await open(
    `model=${encodeURIComponent(model)}&chat=1&system=${encodeURIComponent(system)}&sampler=llada&gen=8&steps=8&temperature=0&seed=1&prompt=${encodeURIComponent(messages[0])}`);
  try {
    await loaded(page, `fixtures/dllm/${name}/`);
    assert.equal(await backendOf(page), 'wgpu', 'SwiftShader WebGPU should be used');
    assert.ok(await page.isChecked('[data-testid=chat]'), 'the model has a chat template: chat is offered and on');
    // Before Run, the worker compiles the first step's kernels (ToWorker::Warm) and says so.
    await page.waitForFunction(() => performance.getEntriesByName('unmask:warmed').length > 0, null, { timeout: RUN_MS });
    const turns = () => page.$$eval('[data-testid=chat-turn]', (ts) => ts.map((t) => [t.dataset.role, t.textContent]));
    for (const [i, message] of messages.entries()) {
      if (i > 0) await page.fill('[data-testid=prompt]', message);
      assert.equal(await page.textContent('[data-testid=run]'), 'Send');
      await page.click('[data-testid=run]');
      await page.waitForFunction((n) => document.querySelectorAll('[data-testid=chat-turn]').length === n,
        2 * (i + 1), { timeout: RUN_MS });
      assert.equal(await page.inputValue('[data-testid=prompt]'), '', 'the box empties after a reply');
    }
    await shot(page, 'webgpu-chat');
    const said = await turns();
    assert.deepEqual(said.map(([role]) => role), ['user', 'assistant', 'user', 'assistant']);
    assert.deepEqual(said.filter(([role]) => role === 'user').map(([, t]) => t), messages);
    const args = ['chat', '--model', path.join(fixtures, 'dllm', name), '--system', system, '--gen-length', '8',
      '--steps', '8', '--seed', '1', '--quiet', ...messages.flatMap((m) => ['--message', m])];
    const reference = execFileSync(cliBin, args, { encoding: 'utf8' }).trim();
    const replies = said.filter(([role]) => role === 'assistant').map(([, t]) => t);
    assert.equal(replies.join('\n'), reference);
    // The link carries the conversation: opened again, it shows the same turns.
    const query = new URL(page.url()).search;
    assert.ok(query.includes('assistant='), query);
    await page.goto(`${origin}${BASE}${query}`);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=chat-turn]').length === 4, null, { timeout: LOAD_MS });
    assert.deepEqual(await turns(), said);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

test('an autoplaying link never downloads weights above its autoload limit: it shows their size and waits for a click', async () => {
  // The tiny model's weights are 100 kB or more; this link lets the page fetch 1 kB by itself.
  const { page, context, problems } = await open(`${TINY}&autoplay=1&embed=1&autoload=0.001&sampler=llada&gen=8&steps=8&seed=1&prompt=${encodeURIComponent(PROMPT)}`);
  try {
    const held = await page.waitForSelector('[data-testid=held]', { timeout: LOAD_MS });
    assert.match(await held.textContent(), /model\.safetensors is 162\.6 kB, more than the 1\.0 kB this page downloads without asking/);
    assert.equal(await page.$$eval('[data-testid=lane]', (ls) => ls.length), 0, 'nothing runs before the click');
    await page.click('[data-testid=load-held]');
    // Loaded on the reader's word; autoplay then runs as it would have.
    const [lane] = await run(page, { click: false });
    assert.equal(lane.status, 'done');
    assert.equal(await page.$('[data-testid=held]'), null);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

test('without WebGPU the CPU badge shows and the result is the same', async () => {
  const c = cases[0];
  const { page, context, problems } = await open(`${c.query}&prompt=${encodeURIComponent(PROMPT)}`, { gpu: false });
  try {
    assert.equal(await backendOf(page), 'cpu');
    await page.waitForSelector('[data-testid=fallback]');
    const [lane] = await run(page);
    await shot(page, 'cpu-fallback');
    assert.equal(lane.status, 'done');
    assertNeverRises(lane.masked);
    assert.equal(lane.text, cli(c.args).text);
    if (webgpuTexts[c.name] !== undefined) assert.equal(lane.text, webgpuTexts[c.name]);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

/** Waits until the model panel names `dir` (a default model's folder) as loaded. */
async function loaded(page, dir) {
  await page.waitForFunction(
    (dir) => (document.querySelector('[data-testid=model-info]')?.textContent ?? '').includes(dir),
    dir, { timeout: LOAD_MS });
}

test('the page opens on the default block-diffusion model and writes what the CLI writes', async () => {
  // www/models/default/bd3: byte-level BPE tokenizer (fancy-regex in wasm), 2M parameters.
  const prompt = 'It is a truth universally acknowledged';
  const { page, context, problems } = await open(
    `sampler=bd3&gen=16&seed=2&prompt=${encodeURIComponent(prompt)}`, { gpu: false });
  try {
    await loaded(page, 'models/default/bd3/');
    const [lane] = await run(page);
    await shot(page, 'default-bd3');
    assert.equal(lane.status, 'done');
    assertNeverRises(lane.masked);
    const reference = cli(['--sampler', 'bd3', '--gen-length', '16', '--seed', '2'], { model: defaultModel('bd3'), prompt });
    assert.equal(lane.text, reference.text);
    assert.ok(lane.text.startsWith(prompt), lane.text);
    assert.match(page.url(), /model=default&/, 'the link names the default, not a folder');
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

test('on the default models each sampler gets its own: a race runs bd3 and ar on two models, llada switches to MDLM', async () => {
  const prompt = 'She was';
  const { page, context, problems } = await open(
    `sampler=bd3&b.sampler=ar&gen=12&seed=4&prompt=${encodeURIComponent(prompt)}`, { gpu: false });
  try {
    await loaded(page, 'models/default/bd3/');
    const [a, b] = await run(page);
    await shot(page, 'default-race');
    assert.equal(a.status, 'done');
    assert.equal(b.status, 'done');
    const models = await page.$$eval('[data-testid=lane-model]', (els) => els.map((e) => e.textContent));
    assert.deepEqual(models, ['./models/default/bd3/', './models/default/ar/']);
    const args = ['--gen-length', '12', '--seed', '4'];
    assert.equal(a.text, cli(['--sampler', 'bd3', ...args], { model: defaultModel('bd3'), prompt }).text);
    assert.equal(b.text, cli(['--sampler', 'ar', ...args], { model: defaultModel('ar'), prompt }).text);

    // A bidirectional sampler for the first run: the page swaps in the MDLM model.
    await page.selectOption('[data-testid=sampler]', 'llada');
    await loaded(page, 'models/default/mdlm/');
    await page.uncheck('[data-testid=race]');
    const [llada] = await run(page);
    assert.equal(llada.status, 'done');
    assertNeverRises(llada.masked);
    assert.equal(llada.text, cli(['--sampler', 'llada', ...args], { model: defaultModel('mdlm'), prompt }).text);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

test('diffusion forcing: a race of two schedules on WebGPU draws the matrix and writes the CLI\'s text; so does the CPU', async () => {
  const prompt = 'She was';
  const query = `sampler=forcing&schedule=autoregressive&levels=2&b.sampler=forcing&b.schedule=full-sequence&b.levels=2&gen=5&seed=6&prompt=${encodeURIComponent(prompt)}`;
  const args = ['--sampler', 'forcing', '--levels', '2', '--gen-length', '5', '--seed', '6'];
  const reference = (schedule, extra = []) =>
    cli([...args, '--schedule', schedule, ...extra], { model: defaultModel('forcing'), prompt });
  const ar = reference('autoregressive');
  const full = reference('full-sequence');
  for (const gpu of [true, false]) {
    const { page, context, problems } = await open(query, { gpu });
    try {
      assert.equal(await backendOf(page), gpu ? 'wgpu' : 'cpu');
      await loaded(page, 'models/default/forcing/');
      const [a, b] = await run(page);
      await shot(page, `forcing-race-${gpu ? 'webgpu' : 'cpu'}`);
      assert.equal(a.status, 'done');
      assert.equal(b.status, 'done');
      assertNeverRises(a.masked);
      assert.equal(a.text, ar.text);
      assert.equal(b.text, full.text);
      // Autoregressive: 2 levels × 5 tokens; full-sequence: 2 steps. Each heatmap holds the
      // opening row and one per step.
      assert.equal(a.steps, 10);
      assert.equal(b.steps, 2);
      const rows = await page.$$eval('[data-testid=heatmap]', (hs) => hs.map((h) => Number(h.dataset.rows)));
      assert.deepEqual(rows, [11, 3]);
      // Back to the first step: each still-masked cell of the autoregressive lane shows its
      // level as a bar (the first token half-way, level 1 of 2, unless it was drawn already).
      await page.fill('[data-testid=scrub]', '0');
      const first = ar.steps[0];
      const drawn = new Set(first.commits.map((c) => c.position));
      const want = first.levels
        .map((level, i) => (i >= ar.prompt_ids.length && !drawn.has(i) ? `${level * 50}%` : null))
        .filter((bar) => bar !== null);
      const bars = await page.$eval('[data-testid=lane]', (lane) =>
        [...lane.querySelectorAll('[data-testid=level]')].map((l) => l.style.height));
      assert.deepEqual(bars, want);
      assert.ok(want.length >= 4, want);
      if (!gpu) {
        // The pyramid's slope slider: letting go of it runs again, same seed, the CLI's text.
        await page.selectOption('[data-knob=schedule] >> nth=0', 'pyramid');
        await page.fill('[data-knob=slope] >> nth=0', '0.5');
        await page.waitForFunction(() => {
          const lane = document.querySelector('[data-testid=lane]');
          return lane?.dataset.status === 'done' && lane.dataset.steps === '4';
        }, null, { timeout: RUN_MS });
        const [pyramid] = await run(page, { click: false });
        assert.equal(pyramid.status, 'done');
        assert.equal(pyramid.steps, 2 + Math.floor(4 * 0.5));
        assert.equal(pyramid.text, reference('pyramid', ['--slope', '0.5']).text);
      }
      await assertClean(page, problems);
    } finally {
      await context.close();
    }
  }
});

test('the "AR" button picks the default autoregressive model and its sampler', async () => {
  const prompt = 'She was';
  const { page, context, problems } = await open(`${TINY}&gen=8&seed=1&prompt=${encodeURIComponent(prompt)}`, { gpu: false });
  try {
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    await page.click('[data-testid=trained-ar]');
    await loaded(page, 'models/default/ar/');
    assert.match(page.url(), /model=default&.*sampler=ar&/);
    const [lane] = await run(page);
    assert.equal(lane.status, 'done');
    const reference = cli(['--sampler', 'ar', '--gen-length', '8', '--seed', '1'], { model: defaultModel('ar'), prompt });
    assert.equal(lane.text, reference.text);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

test('an embed link with a race autoplays both runs in a sandboxed iframe', async () => {
  const { page, frame, context, problems } = await open(
    `${TINY}&sampler=bd3&gen=16&seed=5&b.sampler=llada&b.steps=8&embed=1&autoplay=1&theme=dark&prompt=${encodeURIComponent(PROMPT)}`,
    { host: true });
  try {
    const [a, b] = await run(frame, { click: false });
    await shot(page, 'embed-race');
    assert.equal(a.status, 'done');
    assert.equal(b.status, 'done');
    assert.equal(await frame.locator('[data-testid=prompt]').count(), 0, 'embed hides the controls');
    assert.equal(await frame.getAttribute('html', 'data-theme'), 'dark');
    // Same prompt and seed, different samplers: each writes what the CLI writes.
    assert.equal(a.text, cli(['--sampler', 'bd3', '--gen-length', '16', '--seed', '5']).text);
    assert.equal(b.text, cli(['--sampler', 'llada', '--steps', '8', '--gen-length', '16', '--seed', '5']).text);
    assertNeverRises(b.masked);
    await assertClean(frame, problems);
  } finally {
    await context.close();
  }
});

/** The text + image tab's grid in the first lane: each cell's grey level ('' while masked). */
async function gridLevels(page) {
  return page.$$eval('[data-testid=lane] [data-testid=unified-grid] .px', (cells) => cells.map((c) => c.dataset.level));
}

/** The digit the page's link carries, once its cell `index` reads `level` (the link follows the
 *  pad an effect after each paint). */
async function linkImage(page, index, level) {
  await page.waitForFunction(([i, c]) => new URL(location.href).searchParams.get('image')?.[i] === c,
    [index, level.toString(17)], { timeout: LOAD_MS });
  return page.evaluate(() => new URL(location.href).searchParams.get('image'));
}

/** The CLI's run of the default text + image model: its caption (mmu) or image (t2i). */
function cliUnified(args) {
  const images = path.join(tmp, `unified-${Math.random().toString(36).slice(2)}.json`);
  const out = execFileSync(cliBin, ['generate', '--model', defaultModel('unified'), '--quiet', ...args,
    ...(args.includes('t2i') ? ['--images', images] : [])], { encoding: 'utf8' });
  return args.includes('t2i') ? JSON.parse(readFileSync(images, 'utf8')).images[0].map(String) : out.trim();
}

test('text + image on WebGPU: a digit drawn on the pad is captioned, a caption is drawn, both as the CLI does', async () => {
  const { page, context, problems } = await open('family=unified&task=mmu&seed=1&steps=5');
  try {
    assert.equal(await backendOf(page), 'wgpu');
    await loaded(page, 'models/default/unified/');
    // A stroke down the middle of the pad, drawn with the mouse, and one cell from the keyboard.
    const pad = await page.waitForSelector('[data-testid=pad]');
    const box = await pad.boundingBox();
    const at = (col, row) => [box.x + (col + 0.5) * box.width / 8, box.y + (row + 0.5) * box.height / 8];
    await page.mouse.move(...at(4, 1));
    await page.mouse.down();
    for (let row = 1; row <= 6; row++) await page.mouse.move(...at(4, row), { steps: 2 });
    await page.mouse.up();
    await pad.focus();
    await page.keyboard.press('ArrowUp');
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('Space');
    const image = await linkImage(page, 5 * 8 + 3, 16);
    assert.equal(image.length, 64);
    const levels = [...image].map((c) => parseInt(c, 17));
    for (let row = 1; row <= 6; row++) assert.equal(levels[row * 8 + 4], 16, `row ${row} of the stroke: ${image}`);
    assert.equal(levels[5 * 8 + 3], 16, `the cell painted from the keyboard: ${image}`);
    assert.equal(levels.filter((v) => v > 0).length, 7, image);
    const [lane] = await run(page);
    await shot(page, 'unified-mmu-webgpu');
    assert.equal(lane.status, 'done');
    assert.equal(lane.steps, 5);
    const file = path.join(tmp, 'drawn.json');
    writeFileSync(file, JSON.stringify(levels));
    assert.equal(lane.text, cliUnified(['--task', 'mmu', '--image', file, '--seed', '1', '--steps', '5']));
    // The drawn digit is the lane's grid, given.
    assert.deepEqual(await gridLevels(page), levels.map(String));
    // Text → image: every cell a grey level, the CLI's for the seed.
    await page.click('[data-testid=task-t2i]');
    await page.fill('[data-testid=caption]', 'the digit 3');
    await page.fill('[data-knob=steps] >> nth=0', '6');
    const [drawn] = await run(page);
    assert.equal(drawn.status, 'done');
    assert.equal(drawn.steps, 6);
    await page.click('[aria-label="Last step"]');
    assert.deepEqual(await gridLevels(page),
      cliUnified(['--task', 't2i', '--prompt', 'the digit 3', '--seed', '1', '--steps', '6']));
    assert.match(page.url(), /family=unified&.*task=t2i&caption=the(%20|\+)digit(%20|\+)3/);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

test('text + image on the CPU: a validation digit is captioned; guided races unguided; the run replays from its file', async () => {
  const { page, context, problems } = await open('family=unified&task=mmu&seed=2&steps=4', { gpu: false });
  try {
    assert.equal(await backendOf(page), 'cpu');
    await loaded(page, 'models/default/unified/');
    await page.click('[data-testid=pad-example-4]');
    // The validation four has a level-15 cell in the middle of its top row.
    const example = await linkImage(page, 4, 15);
    // Drawn over: the top-left corner inked with the mouse, on the grey brush.
    await page.click('[data-testid=brush-grey]');
    const box = await (await page.waitForSelector('[data-testid=pad]')).boundingBox();
    await page.mouse.click(box.x + box.width / 16, box.y + box.height / 16);
    const image = await linkImage(page, 0, 8);
    const levels = [...image].map((c) => parseInt(c, 17));
    assert.equal(levels[0], 8, image);
    assert.equal(image.slice(1), example.slice(1));
    assert.ok(levels.filter((v) => v > 0).length > 10, image);
    const [lane] = await run(page);
    assert.equal(lane.status, 'done');
    const file = path.join(tmp, 'four.json');
    writeFileSync(file, JSON.stringify(levels));
    assert.equal(lane.text, cliUnified(['--task', 'mmu', '--image', file, '--seed', '2', '--steps', '4']));
    // Guided (w = 3.5) against unguided on one seed: two grids, the guided one the CLI's.
    await page.click('[data-testid=task-t2i]');
    await page.fill('[data-knob=steps] >> nth=0', '4');
    await page.check('[data-testid=race]');
    const raced = await run(page);
    assert.equal(raced.length, 2);
    assert.ok(raced.every((l) => l.status === 'done' && l.steps === 4), JSON.stringify(raced));
    await page.click('[aria-label="Last step"]');
    await shot(page, 'unified-race-cpu');
    const grids = await page.$$eval('[data-testid=unified-grid]', (gs) => gs.map((g) =>
      [...g.querySelectorAll('.px')].map((c) => c.dataset.level)));
    assert.deepEqual(grids[0], cliUnified(['--task', 't2i', '--prompt', 'a handwritten seven', '--seed', '2', '--steps', '4']));
    assert.deepEqual(grids[1], cliUnified(['--task', 't2i', '--prompt', 'a handwritten seven', '--seed', '2', '--steps', '4', '--cfg', '0']));
    // The grid as a picture, at the step shown and animated.
    for (const [id, name] of [['export-grid-png', 'unmask-grid.png'], ['export-grid-apng', 'unmask-grid-run.png']]) {
      const [file] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid=${id}]`)]);
      assert.equal(file.suggestedFilename(), name);
    }
    // The first lane's trajectory, exported and imported, replays the same grid.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export]')]);
    const saved = path.join(tmp, 'unified-trajectory.json');
    await download.saveAs(saved);
    assert.equal(JSON.parse(readFileSync(saved, 'utf8')).kind, 'unified');
    await page.setInputFiles('[data-testid=import]', saved);
    const [replayed] = await replay(page);
    assert.equal(replayed.steps, 4);
    // The grid follows the timeline: a few cells at the first step, the whole digit at the last.
    await page.click('[aria-label="First step"]');
    const first = (await gridLevels(page)).filter((v) => v !== '').length;
    assert.ok(first > 0 && first < 64, `${first} cells drawn at the first step`);
    await page.click('[aria-label="Last step"]');
    assert.deepEqual(await gridLevels(page), grids[0]);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

test('an imported trajectory replays with no model loaded', async () => {
  const trace = path.join(tmp, 'replay.json');
  execFileSync(cliBin, ['generate', '--model', modelDir, '--prompt', PROMPT, '--quiet', '--sampler', 'llada',
    '--steps', '8', '--gen-length', '16', '--trace', trace]);
  const recorded = JSON.parse(readFileSync(trace, 'utf8'));
  // A model URL that does not exist: nothing can be loaded.
  const { page, context } = await open('model=./no-such-model/');
  try {
    await page.waitForSelector('[data-testid=model-error]', { timeout: LOAD_MS });
    await page.setInputFiles('[data-testid=import]', trace);
    const [lane] = await run(page, { click: false });
    await shot(page, 'imported');
    assert.equal(lane.status, 'imported');
    assert.equal(lane.steps, recorded.steps.length);
    assert.equal(lane.text, recorded.text);
    assertNeverRises(lane.masked);
    // The timeline scrubs: the last step has no masks, the first still has.
    await page.fill('[data-testid=scrub]', String(recorded.steps.length - 1));
    assert.equal(await page.locator('[data-testid=canvas] .cell.masked').count(), 0);
    await page.fill('[data-testid=scrub]', '0');
    assert.ok(await page.locator('[data-testid=canvas] .cell.masked').count() > 0);
    // Keys step the timeline from anywhere outside a control.
    await page.evaluate(() => document.activeElement?.blur());
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('l');
    assert.equal((await page.textContent('[data-testid=step-label]')).trim(), `3 / ${recorded.steps.length}`);
    // The canvas at that step as pictures, for posts that cannot embed the page.
    for (const [button, file] of [['export-text-svg', 'unmask-step.svg'], ['export-text-png', 'unmask-step.png'],
      ['export-text-apng', 'unmask-run.png']]) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid=${button}]`)]);
      assert.equal(download.suggestedFilename(), file);
      const bytes = readFileSync(await download.path());
      if (file.endsWith('.svg')) assert.match(bytes.toString(), /^<svg [^>]*>[\s\S]*<text /);
      else assert.equal(bytes.subarray(1, 4).toString(), 'PNG');
      // The animation has a frame per step (acTL), the step's picture none.
      assert.equal(bytes.includes('acTL'), button === 'export-text-apng', button);
    }
  } finally {
    await context.close();
  }
});

test('a bad model URL shows an error and the page keeps working', async () => {
  const { page, context } = await open('gen=8');
  try {
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    await page.fill('[data-testid=model-url]', `${origin}/nowhere/`);
    await page.click('[data-testid=load]');
    const error = await page.waitForSelector('[data-testid=model-error]', { timeout: LOAD_MS });
    assert.match(await error.textContent(), /404|not found/i);
    await shot(page, 'bad-model');
    await page.fill('[data-testid=model-url]', 'not a model');
    await page.click('[data-testid=load]');
    assert.match(await page.textContent('.panel.model'), /repo id/);
    // Back to the default models, and a run still works.
    await page.click('text=Default');
    const [lane] = await run(page);
    assert.equal(lane.status, 'done');
  } finally {
    await context.close();
  }
});

test('a prompt with HTML is shown literally, never run', async () => {
  const evil = '<img src=x onerror=alert(1)>';
  const { page, context, dialogs } = await open(`prompt=${encodeURIComponent(evil)}&gen=8&${TINY}`);
  try {
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    assert.equal(await page.inputValue('[data-testid=prompt]'), evil);
    await run(page);
    await shot(page, 'html-prompt');
    assert.equal(await page.locator('img').count(), 0, 'an <img> element was created');
    // The tiny word-level tokenizer reads it as <unk> tokens: shown as text, not as elements.
    assert.ok(await page.locator('[data-testid=canvas] .cell', { hasText: '<unk>' }).count() > 0);
    assert.equal(await page.locator('unk').count(), 0, 'token text was parsed as HTML');
    assert.deepEqual(dialogs, []);
    assert.ok((await page.inputValue('[data-testid=share-link]')).includes(encodeURIComponent(evil).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`)));
  } finally {
    await context.close();
  }
});

test('bad URL values get a clear message and the defaults', async () => {
  const { page, context } = await open('steps=banana&theme=neon');
  try {
    await page.waitForSelector('.notice.warn');
    const text = await page.textContent('.notices');
    assert.match(text, /steps: expected a whole number/);
    assert.match(text, /theme: expected auto, light or dark/);
  } finally {
    await context.close();
  }
});

test('cancel stops a run between steps, and "force CPU" switches the backend', async () => {
  const { page, context, problems } = await open(`${TINY}&sampler=bd3&gen=24&seed=2&prompt=${encodeURIComponent(PROMPT)}`);
  try {
    assert.equal(await backendOf(page), 'wgpu');
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    await page.click('[data-testid=run]');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=lane]')?.dataset.steps) >= 1, null, { timeout: RUN_MS });
    await page.click('[data-testid=cancel]');
    const [lane] = await run(page, { click: false });
    assert.equal(lane.status, 'cancelled');
    assert.ok(lane.steps < 24, `a cancelled run went on to the end (${lane.steps} steps)`);
    assert.ok(lane.masked.at(-1) > 0);

    // Switching the backend in the middle of a run ends that run instead of leaving it hanging.
    await page.click('[data-testid=run]');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=lane]')?.dataset.steps) >= 1, null, { timeout: RUN_MS });
    await page.check('[data-testid=force-cpu]');
    const [switched] = await run(page, { click: false });
    assert.equal(switched.status, 'cancelled');
    await page.waitForSelector('[data-testid=backend][data-backend=cpu]', { timeout: LOAD_MS });
    assert.match(page.url(), /backend=cpu/);
    const [again] = await run(page);
    assert.equal(again.status, 'done');
    assert.equal(again.text, cli(['--sampler', 'bd3', '--gen-length', '24', '--seed', '2']).text);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

/** Drops `files` ({ name, b64 }) on the page, as a reader dragging them from disk would. */
function dropFiles(page, files) {
  return page.evaluate((files) => {
    const dt = new DataTransfer();
    for (const { name, b64 } of files) {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], name));
    }
    document.querySelector('.unmask').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, files);
}

test('three model files dropped on the page load and run; a malformed one is refused clearly', async () => {
  const { page, context, problems } = await open(`backend=cpu&sampler=llada&steps=8&gen=16&model=./no-such-model/&prompt=${encodeURIComponent(PROMPT)}`);
  const drop = (files) => dropFiles(page, files);
  try {
    await page.waitForSelector('[data-testid=model-error]', { timeout: LOAD_MS });
    const files = ['config.json', 'model.safetensors', 'tokenizer.json']
      .map((name) => ({ name, b64: readFileSync(path.join(modelDir, name)).toString('base64') }));
    // The weights cut in half: a clear error, and the page goes on.
    const weights = readFileSync(path.join(modelDir, 'model.safetensors'));
    const truncated = files.map((f) => (f.name === 'model.safetensors'
      ? { name: f.name, b64: weights.subarray(0, weights.length >> 1).toString('base64') } : f));
    await drop(truncated);
    await page.waitForFunction(() => /not a valid safetensors file/.test(document.querySelector('[data-testid=model-error]')?.textContent ?? ''), null, { timeout: LOAD_MS });
    // A config naming a billion blocks: refused by its limits before anything is allocated
    // (it once took the worker down asking for 968 GB).
    const config = JSON.parse(readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
    const hostile = files.map((f) => (f.name === 'config.json'
      ? { name: f.name, b64: Buffer.from(JSON.stringify({ ...config, n_blocks: 1_000_000_000 })).toString('base64') } : f));
    await drop(hostile);
    await page.waitForFunction(() => /n_blocks = 1000000000 is larger than Unmask accepts/.test(document.querySelector('[data-testid=model-error]')?.textContent ?? ''), null, { timeout: LOAD_MS });

    await drop(files);
    await page.waitForFunction(() => /dropped files/.test(document.querySelector('[data-testid=model-info]')?.textContent ?? ''), null, { timeout: LOAD_MS });
    const [lane] = await run(page);
    assert.equal(lane.status, 'done');
    assert.equal(lane.text, cli(['--sampler', 'llada', '--steps', '8', '--gen-length', '16']).text);
    // The failed loads left messages; nothing else went wrong.
    assert.deepEqual(problems.filter((p) => !/404|Failed to load resource/.test(p)), []);
  } finally {
    await context.close();
  }
});

test('a llama.cpp GGUF file dropped on the page runs what `unmask import` of it runs', async () => {
  const gguf = path.join(fixtures, 'gguf', 'a2d-qwen3.q8_0.gguf');
  const tokenizer = path.join(fixtures, 'dllm', 'a2d-qwen3', 'tokenizer.json');
  const folder = path.join(tmp, 'imported-a2d-qwen3');
  execFileSync(cliBin, ['import', '--in', gguf, '--out', folder, '--tokenizer', tokenizer]);
  const settings = ['--sampler', 'llada', '--steps', '8', '--gen-length', '8', '--temperature', '0', '--seed', '1'];
  const { page, context, problems } = await open(
    `backend=cpu&sampler=llada&steps=8&gen=8&temperature=0&seed=1&prompt=${encodeURIComponent(QWEN_PROMPT)}`);
  const drop = (files) => dropFiles(page, files);
  const file = (p, name = path.basename(p)) => ({ name, b64: readFileSync(p).toString('base64') });
  try {
    await run(page);
    // Two GGUF files at once: refused by name.
    await drop([file(gguf), file(gguf, 'other.gguf')]);
    await page.waitForFunction(() => /2 GGUF files were dropped/.test(document.querySelector('[data-testid=model-error]')?.textContent ?? ''), null, { timeout: LOAD_MS });
    await drop([file(gguf), file(tokenizer)]);
    await page.waitForFunction(() => /a2d-qwen3\.q8_0\.gguf/.test(document.querySelector('[data-testid=model-info]')?.textContent ?? ''), null, { timeout: LOAD_MS });
    const [lane] = await run(page);
    assert.equal(lane.status, 'done');
    assert.equal(lane.text, cli(settings, { model: folder, prompt: QWEN_PROMPT }).text);
    assert.deepEqual(problems.filter((p) => !/404|Failed to load resource/.test(p)), []);
  } finally {
    await context.close();
  }
});

test('reduced motion shows the latest step at once, and the colour scheme is followed', async () => {
  const query = `${TINY}&backend=cpu&sampler=llada&steps=16&gen=16&speed=1&prompt=${encodeURIComponent(PROMPT)}`;
  const label = async (page) => (await page.textContent('[data-testid=step-label]')).trim();
  const background = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);

  const calm = await open(query, { media: { reducedMotion: 'reduce', colorScheme: 'dark' } });
  try {
    await run(calm.page);
    assert.equal(await label(calm.page), '16 / 16', 'reduced motion should not animate');
    assert.equal(await background(calm.page), 'rgb(20, 21, 23)');
  } finally {
    await calm.context.close();
  }

  // The same run with motion plays at one step per second: it is still near the start.
  const moving = await open(query, { media: { reducedMotion: 'no-preference', colorScheme: 'light' } });
  try {
    await run(moving.page);
    assert.notEqual(await label(moving.page), '16 / 16');
    assert.equal(await background(moving.page), 'rgb(251, 250, 247)');
  } finally {
    await moving.context.close();
  }
});

test('a model from another origin is kept in Cache Storage; one without CORS gets a clear message', async () => {
  // A second origin (another port) serving the tiny model's files, counting requests; only
  // paths under /cors/ send Access-Control-Allow-Origin.
  const hits = {};
  const other = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const [, kind, name] = url.pathname.split('/');
    if (!['cors', 'closed'].includes(kind)) {
      res.writeHead(404).end();
      return;
    }
    hits[url.pathname] = (hits[url.pathname] ?? 0) + 1;
    serveFile(res, modelDir, name, kind === 'cors' ? { 'access-control-allow-origin': '*' } : {});
  });
  // "localhost" is another origin than the page's 127.0.0.1.
  const remote = (await listen(other)).replace('127.0.0.1', 'localhost');
  const { page, context } = await open(`backend=cpu&sampler=llada&steps=8&gen=16&model=${encodeURIComponent(`${remote}/cors/`)}&prompt=${encodeURIComponent(PROMPT)}`);
  try {
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    assert.equal(hits['/cors/model.safetensors'], 1);
    const cached = await page.evaluate(async () => (await (await caches.open('unmask-models-v1')).keys()).map((r) => r.url));
    // The weights (162.6 kB) are kept in parts of 64 KiB, the small files whole.
    for (const key of ['model.safetensors?unmask-parts', 'model.safetensors?unmask-part=2', 'config.json']) {
      assert.ok(cached.some((u) => u.endsWith(`/cors/${key}`)), `no ${key}: cache holds ${cached}`);
    }
    // A reload reads the files from the cache: the server sees no new request.
    await page.reload();
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    assert.equal(hits['/cors/model.safetensors'], 1, 'the weights were downloaded again');
    const [lane] = await run(page);
    assert.equal(lane.text, cli(['--sampler', 'llada', '--steps', '8', '--gen-length', '16']).text);

    await page.fill('[data-testid=model-url]', `${remote}/closed/`);
    await page.click('[data-testid=load]');
    const error = await page.waitForSelector('[data-testid=model-error]', { timeout: LOAD_MS });
    assert.match(await error.textContent(), /CORS/);
  } finally {
    await context.close();
    other.close();
  }
});

test('a model file the storage quota has no room for still loads, is not kept, and the page says so', async () => {
  const hits = {};
  const other = http.createServer((req, res) => {
    const name = new URL(req.url, 'http://localhost').pathname.split('/').pop();
    hits[name] = (hits[name] ?? 0) + 1;
    serveFile(res, modelDir, name, { 'access-control-allow-origin': '*' });
  });
  const remote = (await listen(other)).replace('127.0.0.1', 'localhost');
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    // Served under FULL_DISK: the worker's storage estimate leaves 1 kB (DevTools'
    // Storage.overrideQuotaForOrigin does not reach estimate() in this Chromium, and routing the
    // worker script through Playwright breaks its cross-origin fetches).
    await page.goto(`${origin}${FULL_DISK}?backend=cpu&sampler=llada&steps=8&gen=16&model=${encodeURIComponent(`${remote}/m/`)}&prompt=${encodeURIComponent(PROMPT)}`);
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    const notes = await page.$$eval('[data-testid=model-note]', (ns) => ns.map((n) => n.textContent));
    assert.ok(notes.some((n) => /^model\.safetensors \(162\.6 kB\) is not kept for your next visit: this site may store only [\d.]+ (B|kB) more/.test(n)), notes.join('\n'));
    const cached = await page.evaluate(async () => (await (await caches.open('unmask-models-v1')).keys()).map((r) => r.url));
    assert.ok(!cached.some((u) => u.includes('/model.safetensors')), `cache holds ${cached}`);
    // The model works this visit, and the next one downloads it again.
    const [lane] = await run(page);
    assert.equal(lane.text, cli(['--sampler', 'llada', '--steps', '8', '--gen-length', '16']).text);
    await page.reload();
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    assert.equal(hits['model.safetensors'], 2);
  } finally {
    await context.close();
    other.close();
  }
});

/** The tiny model from another origin ("localhost", the page being 127.0.0.1) with `headers`
 *  (CORS) on every answer; `weights(req, res, bytes)` answers for model.safetensors. */
async function otherOrigin(weights, headers) {
  const bytes = readFileSync(path.join(modelDir, 'model.safetensors'));
  const server = http.createServer((req, res) => {
    const name = new URL(req.url, 'http://localhost').pathname.split('/').pop();
    if (req.method === 'OPTIONS') res.writeHead(204, headers).end();
    else if (name === 'model.safetensors') weights(req, res, bytes);
    else serveFile(res, modelDir, name, headers);
  });
  const url = `${(await listen(server)).replace('127.0.0.1', 'localhost')}/m/`;
  return { query: `backend=cpu&sampler=llada&steps=8&gen=16&model=${encodeURIComponent(url)}&prompt=${encodeURIComponent(PROMPT)}`, server };
}

/** Sends the first `n` bytes of `bytes` under headers promising them all, then drops the line. */
function breakOff(res, headers, bytes, n) {
  res.writeHead(200, { ...headers, 'content-length': bytes.length });
  res.write(bytes.subarray(0, n));
  setTimeout(() => res.socket.destroy(), 300);
}

test('a download that breaks off resumes after a reload from its last whole part', async () => {
  // The first answer for the weights stops after 100,000 of their 162.6 kB (parts of 64 KiB: one
  // whole part arrives); later answers honour Range.
  const requests = [];
  const cors = {
    'access-control-allow-origin': '*',
    'access-control-allow-headers': 'range',
    'access-control-expose-headers': 'content-range, etag',
  };
  const { query, server } = await otherOrigin((req, res, weights) => {
    const range = req.headers.range ?? null;
    requests.push(range);
    const headers = { ...cors, 'content-type': 'application/octet-stream', etag: '"tiny-v1"' };
    if (requests.length === 1) return breakOff(res, headers, weights, 100_000);
    const from = range ? Number(/^bytes=(\d+)-$/.exec(range)[1]) : 0;
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'content-length': weights.length - from,
      ...(range ? { 'content-range': `bytes ${from}-${weights.length - 1}/${weights.length}` } : {}),
    });
    res.end(weights.subarray(from));
  }, cors);
  const keys = (page) => page.evaluate(async () => (await (await caches.open('unmask-models-v1')).keys()).map((r) => r.url.split('/').pop()));
  const { page, context } = await open(query);
  try {
    const error = await page.waitForSelector('[data-testid=model-error]', { timeout: LOAD_MS });
    assert.match(await error.textContent(), /broke off/);
    const kept = await keys(page);
    assert.ok(kept.includes('model.safetensors?unmask-parts') && kept.includes('model.safetensors?unmask-part=0'), `${kept}`);
    assert.ok(!kept.includes('model.safetensors?unmask-part=1'), `${kept}`);
    // A reload asks only for what is missing, and the model is whole.
    await page.reload();
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    assert.deepEqual(requests, [null, 'bytes=65536-']);
    // The DiT's weights, kept in parts, are read back a stage at a time too.
    assert.match(await page.textContent('[data-testid=model-info]'), /a block at a time/);
    const [lane] = await run(page);
    assert.equal(lane.text, cli(['--sampler', 'llada', '--steps', '8', '--gen-length', '16']).text);
    // Every part is kept now: the next visit downloads nothing.
    await page.reload();
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    assert.equal(requests.length, 2);
  } finally {
    await context.close();
    server.close();
  }
});

test('a server that refuses the Range request still serves the model, whole', async () => {
  // The first answer for the weights breaks off as above; every Range request gets 416.
  const requests = [];
  const cors = { 'access-control-allow-origin': '*' };
  const { query, server } = await otherOrigin((req, res, weights) => {
    requests.push(req.headers.range ?? null);
    if (req.headers.range) res.writeHead(416, cors).end();
    else if (requests.length === 1) breakOff(res, cors, weights, 100_000);
    else res.writeHead(200, { ...cors, 'content-length': weights.length }).end(weights);
  }, cors);
  const { page, context } = await open(query);
  try {
    await page.waitForSelector('[data-testid=model-error]', { timeout: LOAD_MS });
    await page.reload();
    await page.waitForSelector('[data-testid=run]:not([disabled])', { timeout: LOAD_MS });
    assert.deepEqual(requests, [null, 'bytes=65536-', null]);
    const [lane] = await run(page);
    assert.equal(lane.text, cli(['--sampler', 'llada', '--steps', '8', '--gen-length', '16']).text);
  } finally {
    await context.close();
    server.close();
  }
});

/** The most weight bytes the worker held at once while it read a model a block at a time, as
 *  the model panel says it once it names `what`. */
async function heldBytes(page, what) {
  await page.waitForFunction((what) => (document.querySelector('[data-testid=model-info]')?.textContent ?? '').includes(what),
    what, { timeout: LOAD_MS });
  const info = await page.textContent('[data-testid=model-info]');
  const m = /a block at a time \(at most ([\d.]+) kB of weights held\)/.exec(info);
  assert.ok(m, info);
  return Number(m[1]) * 1000;
}

test('a transformer kept in parts is read a block at a time, never whole, and so is a dropped one', async () => {
  // a2d-qwen3's 109.8 kB of weights from another origin: kept as two parts of 64 KiB, from
  // which the worker reads each stage's tensors (a block is 49.5 kB) and nothing more.
  const { dir, downloads, server, page, context, problems } = await openQwenElsewhere();
  const size = statSync(path.join(dir, 'model.safetensors')).size;
  const prompt = QWEN_PROMPT;
  const reference = cli(['--sampler', 'llada', '--steps', '8', '--gen-length', '8', '--temperature', '0', '--seed', '1'],
    { model: dir, prompt });
  const held = (what) => heldBytes(page, what);
  try {
    for (const visit of ['download', 'cache']) {
      assert.ok(await held('localhost') * 2 < size, visit);
      const kept = await page.evaluate(async () => (await (await caches.open('unmask-models-v1')).keys()).map((r) => r.url.split('/').pop()));
      assert.ok(kept.includes('model.safetensors?unmask-part=1') && !kept.includes('model.safetensors'), `${kept}`);
      const [lane] = await run(page);
      assert.equal(lane.text, reference.text, visit);
      if (visit === 'download') await page.reload();
    }
    assert.equal(downloads(), 1, 'the second visit reads the parts from the cache');
    // Dropped files are read from disk a range at a time too (with tokenizer_config.json: the
    // same EOS as the download's).
    await page.evaluate((files) => {
      const dt = new DataTransfer();
      for (const { name, b64 } of files) dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name));
      document.querySelector('.unmask').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']
      .map((name) => ({ name, b64: readFileSync(path.join(dir, name)).toString('base64') })));
    assert.ok(await held('dropped files') * 2 < size);
    const [lane] = await run(page);
    assert.equal(lane.text, reference.text);
    await assertClean(page, problems);
  } finally {
    await context.close();
    server.close();
  }
});

/** `model.safetensors`'s bytes split in two shards with an index, as transformers'
 *  `save_pretrained` writes a large checkpoint: `{ name: bytes }`. */
function shardCheckpoint(bytes) {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
  const data = bytes.subarray(8 + n);
  const keys = Object.keys(header).filter((k) => k !== '__metadata__').sort();
  const files = {};
  const weightMap = {};
  let total = 0;
  [keys.slice(0, keys.length >> 1), keys.slice(keys.length >> 1)].forEach((part, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    const own = {};
    const chunks = [];
    let offset = 0;
    for (const k of part) {
      const { dtype, shape, data_offsets: [start, end] } = header[k];
      own[k] = { dtype, shape, data_offsets: [offset, offset + end - start] };
      chunks.push(data.subarray(start, end));
      offset += end - start;
      weightMap[k] = name;
    }
    const json = Buffer.from(JSON.stringify(own).padEnd(Math.ceil(JSON.stringify(own).length / 8) * 8));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length));
    files[name] = Buffer.concat([length, json, ...chunks]);
    total += offset;
  });
  files['model.safetensors.index.json'] = Buffer.from(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  return files;
}

test('a checkpoint in shards loads from a server and from a drop (read a stage at a time), and writes the CLI\'s text', async () => {
  const dir = path.join(fixtures, 'dllm', 'a2d-qwen3');
  const shards = shardCheckpoint(readFileSync(path.join(dir, 'model.safetensors')));
  const size = Object.entries(shards).filter(([n]) => n.endsWith('.safetensors')).reduce((a, [, b]) => a + b.length, 0);
  const server = http.createServer((req, res) => {
    const name = new URL(req.url, 'http://localhost').pathname.split('/').pop();
    const cors = { 'access-control-allow-origin': '*' };
    if (shards[name]) res.writeHead(200, { 'content-length': shards[name].length, ...cors }).end(shards[name]);
    else if (name === 'model.safetensors') res.writeHead(404, cors).end('not found');
    else serveFile(res, dir, name, cors);
  });
  const url = `${(await listen(server)).replace('127.0.0.1', 'localhost')}/s/`;
  const { page, context, problems } = await open(
    `backend=cpu&model=${encodeURIComponent(url)}&sampler=llada&steps=8&gen=8&temperature=0&seed=1&prompt=${encodeURIComponent(QWEN_PROMPT)}`);
  const reference = cli(['--sampler', 'llada', '--steps', '8', '--gen-length', '8', '--temperature', '0', '--seed', '1'],
    { model: dir, prompt: QWEN_PROMPT });
  const held = (what) => heldBytes(page, what);
  try {
    // Each shard (55 kB) is under a part's 64 KiB: downloaded whole, not kept in parts.
    await loaded(page, 'localhost');
    let [lane] = await run(page);
    assert.equal(lane.text, reference.text, 'downloaded shards');
    // Dropped: the index and its shards with the folder's other files.
    const folder = ['config.json', 'tokenizer.json', 'tokenizer_config.json']
      .map((name) => ({ name, b64: readFileSync(path.join(dir, name)).toString('base64') }));
    const sharded = Object.entries(shards).map(([name, b]) => ({ name, b64: b.toString('base64') }));
    // A shard left behind is named.
    await dropFiles(page, [...folder, ...sharded.filter((f) => !f.name.startsWith('model-00002'))]);
    await page.waitForFunction(() => /names model-00002-of-00002\.safetensors, which was not dropped/.test(document.querySelector('[data-testid=model-error]')?.textContent ?? ''), null, { timeout: LOAD_MS });
    await dropFiles(page, [...folder, ...sharded]);
    assert.ok(await held('dropped files') * 2 < size);
    [lane] = await run(page);
    assert.equal(lane.text, reference.text, 'dropped shards');
    // The probe for model.safetensors is the one 404 the console shows.
    await assertClean(page, problems.filter((p) => !/404/.test(p)));
  } finally {
    await context.close();
    server.close();
  }
});

test('WebGPU: a 64-token ar run stays on WebGPU and writes the CLI\'s tokens at temperature 0', async () => {
  // This prompt once made SwiftShader's WGSL tanh (inside GELU) overflow to NaN on its last token:
  // the lane failed with "unreadable message … null, expected f64". The DiT's own GELU has no tanh.
  const prompt = 'The next morning, Elizabeth was speaking of the place, tenderly heard her overtins. She';
  const { page, context, problems } = await open(
    `sampler=ar&gen=64&temperature=0&seed=5&precision=f32&prompt=${encodeURIComponent(prompt)}`);
  try {
    assert.equal(await backendOf(page), 'wgpu');
    await loaded(page, 'models/default/ar/');
    const [lane] = await run(page);
    assert.equal(lane.status, 'done');
    assert.equal(lane.steps, 64);
    const reference = cli(['--sampler', 'ar', '--gen-length', '64', '--temperature', '0', '--seed', '5'],
      { model: defaultModel('ar'), prompt });
    assert.equal(lane.text, reference.text);
    // No fallback fired: the badge still says WebGPU.
    assert.equal(await page.getAttribute('[data-testid=backend]', 'data-backend'), 'wgpu');
    assert.equal((await page.textContent('[data-testid=backend]')).trim(), 'WebGPU');
    assert.equal(await page.locator('[data-testid=fallback]').count(), 0);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

/** Makes the worker's WebGPU device be destroyed at its `n`-th readback (a lost GPU, mid-run). */
async function loseDeviceAt(context, n) {
  await context.route('**/worker.js', async (route) => {
    const response = await route.fetch();
    const patch = `{
      const requestDevice = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (...args) {
        const device = await requestDevice.apply(this, args);
        const mapAsync = GPUBuffer.prototype.mapAsync;
        let reads = 0;
        GPUBuffer.prototype.mapAsync = function (...a) {
          if (++reads === ${n}) device.destroy();
          return mapAsync.apply(this, a);
        };
        return device;
      };
    }`;
    await route.fulfill({ response, body: `${patch}\n${await response.text()}` });
  });
}

test('a WebGPU device lost mid-run: the run is done again on the CPU, the badge says so, the text is the CLI\'s', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
  try {
    await loseDeviceAt(context, 6);
    const page = await context.newPage();
    await page.goto(`${origin}${BASE}?${TINY}&sampler=bd3&gen=24&seed=2&autoplay=1&prompt=${encodeURIComponent(PROMPT)}`);
    const [lane] = await run(page, { click: false });
    await shot(page, 'device-lost');
    assert.equal(lane.status, 'done');
    assertNeverRises(lane.masked);
    assert.equal(lane.text, cli(['--sampler', 'bd3', '--gen-length', '24', '--seed', '2']).text);
    assert.equal(await page.getAttribute('[data-testid=backend]', 'data-backend'), 'cpu');
    assert.match(await page.textContent('[data-testid=backend]'), /WebGPU failed/);
    assert.match(await page.textContent('[data-testid=fallback]'), /WebGPU failed .*done again on the CPU/s);
  } finally {
    await context.close();
  }
});

test('NaN weights: the GPU\'s non-finite logits send the run to the CPU, whose own error is shown', async () => {
  // The tiny model with one NaN in the output bias: every backend's logits are NaN there.
  const weights = readFileSync(path.join(modelDir, 'model.safetensors'));
  const headerLength = Number(weights.readBigUInt64LE(0));
  const header = JSON.parse(weights.subarray(8, 8 + headerLength).toString());
  const [start] = header['backbone.output_layer.linear.bias'].data_offsets;
  const poisoned = Buffer.from(weights);
  poisoned.writeFloatLE(NaN, 8 + headerLength + start);
  const context = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
  try {
    await context.route('**/nan-model/*', (route) => {
      const name = new URL(route.request().url()).pathname.split('/').at(-1);
      const body = name === 'model.safetensors' ? poisoned : readFileSync(path.join(modelDir, name));
      return route.fulfill({ status: 200, body });
    });
    const page = await context.newPage();
    await page.goto(`${origin}${BASE}?model=${encodeURIComponent('./nan-model/')}&sampler=llada&steps=4&gen=4&autoplay=1&prompt=${encodeURIComponent(PROMPT)}`);
    const [lane] = await run(page, { click: false });
    assert.equal(lane.status, 'failed');
    assert.equal(await page.getAttribute('[data-testid=backend]', 'data-backend'), 'cpu');
    assert.match(await page.textContent('[data-testid=fallback]'), /WebGPU failed \(the .* backend returned \d+ non-finite logits/);
    assert.match(await page.textContent('.unmask'), /non-finite logits \(NaN or infinity\) at step 0/);
  } finally {
    await context.close();
  }
});

// The digits family (issue 14): Gaussian diffusion on the shipped 8×8 digits model. DDIM with a
// few steps keeps SwiftShader's share of CI small.

/** The CLI's trace of a digits run (`unmask generate --model …/ddpm`), pixels on the diffusion's
 *  scale. */
function cliDigits(args) {
  const trace = path.join(tmp, `digits-${Math.random().toString(36).slice(2)}.json`);
  execFileSync(cliBin, ['generate', '--model', defaultModel('ddpm'), '--quiet', '--trace', trace, ...args]);
  return { trace, recorded: JSON.parse(readFileSync(trace, 'utf8')) };
}

/** The finished samples of every lane (the diffusion's scale). */
async function samples(page) {
  return page.$$eval('[data-testid=lane]', (ls) => ls.map((l) => JSON.parse(l.dataset.samples || 'null')));
}

function assertClose(found, expected, tolerance, what) {
  assert.ok(Array.isArray(found), `${what}: no samples`);
  assert.equal(found.length, expected.length, `${what}: ${found.length} values, not ${expected.length}`);
  const worst = Math.max(...found.map((v, i) => Math.abs(v - expected[i])));
  assert.ok(worst <= tolerance, `${what}: a pixel differs by ${worst}`);
}

const digitCases = [
  {
    name: 'classifier guidance on WebGPU',
    gpu: true,
    query: 'family=ddpm&class=7&classifier_scale=3&seed=1&steps=12',
    args: ['--class', '7', '--classifier-scale', '3', '--seed', '1', '--sampler', 'ddim', '--steps', '12'],
  },
  {
    name: 'classifier-free guidance on the CPU fallback',
    gpu: false,
    query: 'family=ddpm&class=3&cfg=1.5&seed=2&steps=10',
    args: ['--class', '3', '--cfg', '1.5', '--seed', '2', '--sampler', 'ddim', '--steps', '10'],
  },
];

for (const c of digitCases) {
  test(`digits: DDIM with ${c.name} draws the CLI's digit within 1e-3`, async () => {
    const { page, context, problems } = await open(c.query, { gpu: c.gpu });
    try {
      assert.equal(await backendOf(page), c.gpu ? 'wgpu' : 'cpu');
      await loaded(page, 'models/default/ddpm/');
      // The classifier the model names loaded beside it.
      assert.match(await page.textContent('[data-testid=model-info]'), /classifier \.\/models\/default\/ddpm-classifier\//);
      const [lane] = await run(page);
      await shot(page, `digits-${c.gpu ? 'webgpu' : 'cpu'}`);
      assert.equal(lane.status, 'done');
      const { recorded } = cliDigits(c.args);
      assert.equal(lane.steps, recorded.steps.length);
      const [found] = await samples(page);
      assertClose(found, recorded.steps.at(-1).x, 1e-3, c.name);
      // The classifier watched every step: its plot is drawn beside ‖x_t‖.
      assert.equal(await page.locator('[data-testid=class-prob]').count(), 1);
      assert.equal(await page.locator('[data-testid=norm]').count(), 1);
      assert.equal(await page.locator('[data-testid=digits] canvas').count(), 2);
      assert.match(page.url(), /family=ddpm&/);
      // The forward view noises a real digit to the t of its slider.
      await page.fill('[data-testid=forward-t]', '999');
      assert.match(await page.textContent('[data-testid=forward]'), /0\.00\d·x₀ \+ 1\.000·ε at t = 999/);
      await assertClean(page, problems);
    } finally {
      await context.close();
    }
  });
}

test('digits: a race of guided against unguided shares the seed; its trajectory and a v1 text one replay', async () => {
  const { trace, recorded } = cliDigits(['--class', '2', '--cfg', '2', '--seed', '4', '--sampler', 'ddim', '--steps', '6']);
  const { page, context, problems } = await open('family=ddpm&class=2&cfg=2&seed=4&steps=6&b.sampler=ddim&b.steps=6', { gpu: false });
  try {
    await loaded(page, 'models/default/ddpm/');
    const raced = await run(page);
    assert.equal(raced.length, 2);
    assert.ok(raced.every((l) => l.status === 'done' && l.steps === 6), JSON.stringify(raced));
    const [guided, unguided] = await samples(page);
    assertClose(guided, recorded.steps.at(-1).x, 1e-3, 'the race\'s guided lane');
    assert.ok(guided.some((v, i) => Math.abs(v - unguided[i]) > 1e-2), 'guidance changed nothing');
    // The PNG button offers a file.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export-png]')]);
    assert.equal(download.suggestedFilename(), 'unmask-step.png');
    // The CLI's ddpm trajectory (version 2) replays with no model.
    await page.setInputFiles('[data-testid=import]', trace);
    const [replayed] = await replay(page);
    assert.equal(replayed.status, 'imported');
    assert.equal(replayed.steps, 6);
    assertClose((await samples(page))[0], recorded.steps.at(-1).x, 0, 'the replay');
    // A version-1 text trajectory replays too, and the page turns back to text.
    const v1 = path.join(fixtures, 'trajectories/v1-bd3.json');
    await page.setInputFiles('[data-testid=import]', v1);
    const [text] = await replay(page);
    assert.equal(text.status, 'imported');
    assert.equal(text.steps, JSON.parse(readFileSync(v1, 'utf8')).steps.length);
    assert.doesNotMatch(page.url(), /family=ddpm/);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

test('digits: a class outside the model gets a clear error naming its control, and the page keeps working', async () => {
  const { page, context, problems } = await open('family=ddpm&class=12&seed=1&steps=3', { gpu: false });
  try {
    await loaded(page, 'models/default/ddpm/');
    const [lane] = await run(page);
    assert.equal(lane.status, 'failed');
    assert.equal(
      (await page.textContent('[data-testid=run-error]')).trim(),
      'class 12 is not one of the model\'s 10 classes — change “class” above');
    // The page keeps working: a class the model has runs.
    await page.selectOption('[data-knob=class]', '4');
    const [again] = await run(page);
    assert.equal(again.status, 'done');
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

// Diffusion-LM (issue 18): the shipped word-vector model, a few reverse steps each.

/** The CLI's trajectory of a Diffusion-LM run (`unmask generate --model …/diffusion-lm`). */
function cliWords(args) {
  const trace = path.join(tmp, `words-${Math.random().toString(36).slice(2)}.json`);
  execFileSync(cliBin, ['generate', '--model', defaultModel('diffusion-lm'), '--quiet', '--trace', trace, ...args]);
  return { trace, recorded: JSON.parse(readFileSync(trace, 'utf8')) };
}

const wordCases = [
  {
    name: 'on WebGPU',
    gpu: true,
    query: 'family=diffusion-lm&prompt=It%20was&steps=12&gen=8&seed=1',
    args: ['--prompt', 'It was', '--steps', '12', '--gen-length', '8', '--seed', '1'],
  },
  {
    name: 'without clamping, filling a gap, on the CPU fallback',
    gpu: false,
    query: 'family=diffusion-lm&prompt=She%20%5BMASK%5D%20the&steps=10&gen=10&clamp=0&seed=2',
    args: ['--prompt', 'She [MASK] the', '--steps', '10', '--gen-length', '10', '--clamp', 'false', '--seed', '2'],
  },
];

for (const c of wordCases) {
  test(`words: Diffusion-LM ${c.name} writes the CLI's words`, async () => {
    const { page, context, problems } = await open(c.query, { gpu: c.gpu });
    try {
      assert.equal(await backendOf(page), c.gpu ? 'wgpu' : 'cpu');
      await loaded(page, 'models/default/diffusion-lm/');
      // The control classifier the model names loaded beside it.
      assert.match(await page.textContent('[data-testid=model-info]'), /control classifier \.\/models\/default\/diffusion-lm-classifier\//);
      const [lane] = await run(page);
      await shot(page, `words-${c.gpu ? 'webgpu' : 'cpu'}`);
      assert.equal(lane.status, 'done');
      const { recorded } = cliWords(c.args);
      assert.equal(lane.steps, recorded.steps.length);
      assert.equal(lane.text, recorded.text);
      // Every position shows a word; the distance is plotted, and no control watched.
      assert.equal(await page.locator('[data-testid=words] .cell').count(), recorded.steps[0].ids.length);
      // The prompt's words are held; a gap in it is written like the positions after it.
      const mask = recorded.model.mask_id;
      const held = recorded.prompt_ids.filter((id) => id !== mask).length;
      assert.equal(await page.locator('[data-testid=words] .cell.prompt').count(), held);
      assert.equal(await page.locator('[data-testid=mean-distance]').count(), 1);
      assert.equal(await page.locator('[data-testid=control-prob]').count(), 0);
      assert.match(page.url(), /family=diffusion-lm&/);
      // The inspector lists a generated word's nearest words at the last step as the CLI's trace
      // records them, its own word first; the arrow keys move along the words.
      await page.fill('[data-testid=scrub]', String(recorded.steps.length - 1));
      const near = recorded.steps.at(-1).nearest[1];
      await page.hover(`[data-testid=words] .cell[data-pos="${near.position}"]`);
      const shown = await page.locator('[data-testid=words-inspector] .tok').allTextContents();
      const visible = (t) => t.replace(/\n/g, '↵').replace(/\t/g, '⇥');
      assert.deepEqual(shown, near.top.map((w) => visible(recorded.vocab[w.token])));
      assert.equal(near.top[0].token, recorded.steps.at(-1).ids[near.position]);
      await page.focus('[data-testid=words]');
      await page.keyboard.press('ArrowRight');
      assert.match(await page.textContent('[data-testid=words-inspector]'), new RegExp(`position ${near.position + 1} `));
      await assertClean(page, problems);
    } finally {
      await context.close();
    }
  });
}

test('words: control toward the Bible races the same chain without it; the CLI\'s trajectory replays', async () => {
  const { trace, recorded } = cliWords(['--steps', '6', '--gen-length', '12', '--seed', '3', '--control', 'bible', '--control-scale', '3']);
  const { page, context, problems } = await open('family=diffusion-lm&prompt=&steps=14&gen=12&seed=3&control=bible&control_scale=3&b.control=none', { gpu: false });
  try {
    await loaded(page, 'models/default/diffusion-lm/');
    const raced = await run(page);
    assert.equal(raced.length, 2);
    assert.ok(raced.every((l) => l.status === 'done' && l.steps === 14), JSON.stringify(raced));
    assert.notEqual(raced[0].text, raced[1].text, 'control changed nothing');
    // The steered lane plots the classifier's probability of its target; the other has none.
    assert.equal(await page.locator('[data-testid=control-prob]').count(), 1);
    assert.match(await page.textContent('[data-testid=lane] h2'), /toward bible ×3/);
    // The step shown saves as the text canvas's SVG, its words in it.
    const [svg] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export-text-svg]')]);
    assert.equal(svg.suggestedFilename(), 'unmask-step.svg');
    const drawn = readFileSync(await svg.path(), 'utf8');
    assert.ok((raced[0].text.match(/[A-Za-z]{3,}/g) ?? []).some((w) => drawn.includes(w)), drawn.slice(0, 300));
    // The CLI's trajectory replays with no model, its words as the CLI wrote them.
    await page.setInputFiles('[data-testid=import]', trace);
    const [replayed] = await replay(page);
    assert.equal(replayed.status, 'imported');
    assert.equal(replayed.steps, 6);
    assert.equal(replayed.text, recorded.text);
    assert.equal(await page.locator('[data-testid=control-prob]').count(), 1);
    assert.match(page.url(), /family=diffusion-lm&/);
    await assertClean(page, problems);
  } finally {
    await context.close();
  }
});

test('words: a dropped Diffusion-LM folder needs its tokenizer, then runs as the CLI does; control is off without its classifier', async () => {
  const { page, context, problems } = await open('family=diffusion-lm&model=./no-such-model/&prompt=It&steps=8&gen=6&seed=5', { gpu: false });
  const dir = defaultModel('diffusion-lm');
  const files = ['config.json', 'model.safetensors', 'tokenizer.json']
    .map((name) => ({ name, b64: readFileSync(path.join(dir, name)).toString('base64') }));
  try {
    await page.waitForSelector('[data-testid=model-error]', { timeout: LOAD_MS });
    await dropFiles(page, files.filter((f) => f.name !== 'tokenizer.json'));
    await page.waitForFunction(() => /a diffusion-lm folder reads its tokens with its tokenizer\.json: drop it too/.test(document.querySelector('[data-testid=model-error]')?.textContent ?? ''), null, { timeout: LOAD_MS });
    await dropFiles(page, files);
    await loaded(page, 'dropped files');
    // Dropped files name no folder beside them: the classifier the config names is not found.
    assert.match(await page.textContent('[data-testid=model-info]'), /cannot be found beside .*control is off/);
    const [lane] = await run(page);
    assert.equal(lane.status, 'done');
    const { recorded } = cliWords(['--prompt', 'It', '--steps', '8', '--gen-length', '6', '--seed', '5']);
    assert.equal(lane.text, recorded.text);
    assert.deepEqual(problems.filter((p) => !/404|Failed to load resource/.test(p)), []);
  } finally {
    await context.close();
  }
});
