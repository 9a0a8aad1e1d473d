// llama.cpp's CPU throughput on a GGUF file, measured the way `pareto bench` measures Pareto:
//   ppN: N prompt tokens evaluated in one batch into an empty sequence;
//   tgN: after a one-token prompt, N tokens generated greedily one at a time (only those N timed).
// With --depth D, both run after D tokens already in the sequence (llama-bench -d), evaluated once
// untimed; each test then erases its own tokens again. --flash-attn turns on llama.cpp's flash
// attention (-fa); it is off otherwise, as in the shared references.
// One warm-up of each, then REPS timed repetitions; mean and sample sd of tokens per second.
// It also measures the driver's own per-token cost (JS, N-API, sampling glue): the same tg loop
// on a tiny model (stories260K), where llama.cpp's compute is close to zero.
//
// usage: node bench.mjs MODEL [--threads T] [--pp N] [--tg N] [--reps R] [--depth D] [--flash-attn]
//                              [--overhead-model GGUF]
// prints one JSON object on stdout.
import {getLlama} from "node-llama-cpp";
import {existsSync} from "node:fs";
import path from "node:path";
import {fileURLToPath} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flags = new Set(["--flash-attn"]);
const modelPath = args.find((a, i) => !a.startsWith("--") &&
                                      (i === 0 || !args[i - 1].startsWith("--") || flags.has(args[i - 1])));
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
if (!modelPath) {
  console.error("usage: node bench.mjs MODEL [--threads T] [--pp N] [--tg N] [--reps R] [--overhead-model GGUF]");
  process.exit(2);
}
const threads = Number(option("--threads", "2"));
const nPrompt = Number(option("--pp", "512"));
const nGen = Number(option("--tg", "128"));
const reps = Number(option("--reps", "5"));
const depth = Number(option("--depth", "0"));
const flashAttention = args.includes("--flash-attn");
const sharedDir = process.env.PARETO_SHARED ?? path.join(here, "..", "..", "..", "shared");
const overheadModel = option("--overhead-model", path.join(sharedDir, "models/stories260K/stories260K.gguf"));

function summarize(values) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = values.length < 2 ? 0 :
      Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1));
  return {mean, sd};
}

// Deterministic prompt tokens spread over the vocabulary (xorshift64, as pareto bench does).
function promptTokens(n, nVocab) {
  let x = 0x2545f4914f6cdd1dn;
  const mask = (1n << 64n) - 1n;
  const out = [];
  for (let i = 0; i < n; i++) {
    x ^= (x << 13n) & mask;
    x ^= x >> 7n;
    x ^= (x << 17n) & mask;
    out.push(Number(x % BigInt(nVocab)));
  }
  return out;
}

// Rolls the sequence back to its first `depth` tokens.
async function rollBack(seq, depth) {
  if (seq.nextTokenIndex > depth) {
    await seq.eraseContextTokenRanges([{start: depth, end: seq.nextTokenIndex}]);
  }
}

async function timePrompt(seq, depth, tokens) {
  await rollBack(seq, depth);
  const start = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(tokens);
  return (performance.now() - start) / 1000;
}

// Greedy single-token steps after a one-token prompt (BOS): {steps, seconds} of the timed ones.
// End-of-generation tokens are yielded too (yieldEogToken), so a random model that picks </s>
// keeps going, as Pareto's loop does.
async function timeGeneration(seq, depth, bos, n) {
  await rollBack(seq, depth);
  let steps = 0;
  let start = 0;
  for await (const token of seq.evaluate([bos], {temperature: 0, yieldEogToken: true})) {
    void token;
    if (start === 0) {
      start = performance.now();  // the prompt token is evaluated: start timing
      continue;
    }
    if (++steps === n) break;
  }
  const seconds = (performance.now() - start) / 1000;
  return {steps, seconds};
}

async function benchModel(llama, file, {pp, tg, repetitions, nThreads, depth = 0, flash = false}) {
  const model = await llama.loadModel({modelPath: file, useMmap: true});
  // Room beyond the tokens a test holds: a sequence that reaches the context size makes
  // node-llama-cpp shift the context (erase and re-evaluate), which the timings must not include.
  const contextSize = depth + Math.max(pp, tg + 1, 32) + 256;
  const context = await model.createContext({
    contextSize, batchSize: Math.max(pp, depth, 1), sequences: 1,
    threads: {ideal: nThreads, min: nThreads}, flashAttention: flash,
  });
  const embd = model.fileInfo.tensorInfo?.find((t) => t.name === "token_embd.weight");
  const vocab = Number(embd?.dimensions?.[1] ?? 256);
  const bos = model.tokens.bos ?? 1;
  const seq = context.getSequence();
  if (depth > 0) await seq.evaluateWithoutGeneratingNewTokens(promptTokens(depth, vocab));
  const suffix = depth > 0 ? ` @ d${depth}` : "";
  const results = [];
  if (pp > 0) {
    const tokens = promptTokens(pp, vocab);
    await timePrompt(seq, depth, tokens.slice(0, Math.min(pp, 16)));  // warm-up
    const samples = [];
    for (let r = 0; r < repetitions; r++) samples.push(pp / await timePrompt(seq, depth, tokens));
    const s = summarize(samples);
    results.push({test: `pp${pp}${suffix}`, tok_per_s_mean: s.mean, tok_per_s_sd: s.sd, samples});
  }
  if (tg > 0) {
    await timeGeneration(seq, depth, bos, Math.min(tg, 4));  // warm-up
    const samples = [];
    for (let r = 0; r < repetitions; r++) {
      const {steps, seconds} = await timeGeneration(seq, depth, bos, tg);
      if (steps !== tg) throw new Error(`tg${tg}: generation stopped after ${steps} tokens`);
      samples.push(steps / seconds);
    }
    const s = summarize(samples);
    results.push({test: `tg${tg}${suffix}`, tok_per_s_mean: s.mean, tok_per_s_sd: s.sd, samples});
  }
  seq.dispose();
  await context.dispose();
  await model.dispose();
  return results;
}

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const results = await benchModel(llama, modelPath, {pp: nPrompt, tg: nGen, repetitions: reps, nThreads: threads,
                                                    depth, flash: flashAttention});
let overhead = null;
if (existsSync(overheadModel)) {
  // stories260K: ~0.5 MFLOP per token, so its tg time is almost all per-token driver cost (an
  // upper bound on it). One thread: with more, ggml's spinning barriers on a busy machine would
  // add scheduler delays that are not the driver's.
  const tiny = await benchModel(llama, overheadModel, {pp: 0, tg: 256, repetitions: 3, nThreads: 1});
  overhead = {model: overheadModel, threads: 1, tok_per_s: tiny[0].tok_per_s_mean,
              us_per_token: 1e6 / tiny[0].tok_per_s_mean};
}
console.log(JSON.stringify({
  engine: "llama.cpp (node-llama-cpp 3.22.1, CPU)",
  model: path.basename(modelPath), model_path: modelPath, threads, repetitions: reps,
  n_depth: depth, flash_attn: flashAttention,
  results, driver_overhead: overhead,
}));
process.exit(0);
