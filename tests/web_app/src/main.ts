// A minimal app on the npm package "vae-digits", bundled by esbuild (tests/test_web_package.py builds,
// type-checks and runs it in Chromium).
import { env } from "onnxruntime-web/wasm";
import { BundleError, Generator, VaeDigitsError } from "vae-digits";
import type { Labels, SampleOptions } from "vae-digits";

// The build copies onnxruntime-web's ort-wasm-simd-threaded.wasm and .mjs next to this bundle: say
// where. With the .mjs named, WebAssembly threads (under COOP/COEP) start from it, not from this bundle.
env.wasm.wasmPaths = new URL("./", import.meta.url).href;

interface Drawn {
  z: number[];
  labelIds: number[] | null;
  digits: number[];
  threads: number;
}

async function draw(bundle: string, labels: Labels, options: SampleOptions): Promise<Drawn> {
  const generator = await Generator.load(bundle);
  const { z, labelIds } = generator.sample(labels, options);
  const digits = await generator.generate(labels, options);
  const ids = labelIds ? Array.from(labelIds) : null;
  return { z: Array.from(z), labelIds: ids, digits: Array.from(digits), threads: Generator.threads };
}

async function loadError(bundle: string): Promise<string> {
  try {
    await Generator.load(bundle);
    return "no error";
  } catch (error) {
    const kind = error instanceof BundleError ? "BundleError" : error instanceof VaeDigitsError ? "VaeDigitsError" : "?";
    return `${kind} ${(error as Error).name}: ${(error as Error).message}`;
  }
}

// The types are real: a wrong option does not compile.
export function misuse(generator: Generator): void {
  // @ts-expect-error: count is a number
  generator.sample(null, { count: "3" });
  // @ts-expect-error: decode returns a promise of a Float32Array, not a string
  const wrong: Promise<string> = generator.decode([[0, 0]], 1);
  void wrong;
}

Object.assign(globalThis, { app: { draw, loadError } });
document.body.dataset.status = "ready";
