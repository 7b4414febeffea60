// What the browser tests and the page benchmark share: serving dist/, launching Debian's
// Chromium with WebGPU (SwiftShader), and taking WebGPU away from a page and its worker.

import { createReadStream, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The built page (`trunk build`; `UNMASK_DIST` for another build, e.g. to compare two). */
export const dist = path.resolve(process.env.UNMASK_DIST ?? path.resolve(here, '../../dist'));
/** Test models (`tests/fixtures/`), served beside the page but never part of it. */
export const fixtures = path.resolve(here, '../fixtures');

const types = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json',
  '.safetensors': 'application/octet-stream',
};

/** Answers with the file `rel` of `root` (404 outside it or when missing). */
export function serveFile(res, root, rel, headers = {}) {
  const file = path.resolve(root, rel || 'index.html');
  if (!file.startsWith(root + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404).end('not found');
    return;
  }
  res.writeHead(200, {
    'content-type': types[path.extname(file)] ?? 'application/octet-stream',
    'content-length': statSync(file).size,
    ...headers,
  });
  createReadStream(file).pipe(res);
}

/** Starts `server` on a free loopback port; returns its origin. */
export async function listen(server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${server.address().port}`;
}

/** Debian's Chromium, headless, with WebGPU on SwiftShader and no network chatter. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    ],
  });
}

/** Removes WebGPU from `page` and, by patching worker.js on its way in, from its worker
 *  (init scripts do not run in workers). */
export async function removeWebGpu(context, page) {
  await page.addInitScript(() => { delete Navigator.prototype.gpu; });
  await context.route('**/worker.js', async (route) => {
    const response = await route.fetch();
    const body = `delete WorkerNavigator.prototype.gpu;\n${await response.text()}`;
    await route.fulfill({ response, body });
  });
}
