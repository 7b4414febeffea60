// The model worker: the page's own wasm module, started in worker mode (see src/browser/worker.rs).
import init, { workerStart } from './unmask-web.js';

await init({ module_or_path: new URL('./unmask-web_bg.wasm', import.meta.url) });
workerStart();
