// Writes a llama.cpp reference file for the differential tests (tests/differential/data) from the
// llama.cpp build node-llama-cpp loads on this CPU: for each case of an oracle file (its prompt
// tokens and step count), greedy decoding with the settings of the shared oracle (context 512,
// batch 512, 2 threads, F32 KV cache, flash attention off, one fresh context per case), recording
// the greedy tokens and, before each, the 8 most likely tokens with their log-probabilities.
// node-llama-cpp exposes probabilities, not logits; a log-probability is the logit minus the
// position's log-sum-exp, so the tests compare Pareto's log-softmax with these values.
//
// usage: node reference.mjs MODEL.gguf ORACLE.json > OUT.json
import {getLlama} from "node-llama-cpp";
import {readFileSync} from "node:fs";

const [modelPath, oraclePath] = process.argv.slice(2);
if (!modelPath || !oraclePath) {
  console.error("usage: node reference.mjs MODEL.gguf ORACLE.json > OUT.json");
  process.exit(2);
}
const cases = JSON.parse(readFileSync(oraclePath, "utf8"));
const llama = await getLlama({gpu: false, build: "never"});
const model = await llama.loadModel({modelPath});
const out = [];
for (const c of cases) {
  const context = await model.createContext({
    contextSize: 512, batchSize: 512, sequences: 1, threads: {ideal: 2, min: 2},
    flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
  });
  const seq = context.getSequence();
  const greedy = [];
  const top = [];
  const metadata = {probabilities: true};
  for await (const r of seq.evaluateWithMetadata(c.prompt_tokens, metadata, {temperature: 0})) {
    greedy.push(r.token);
    top.push([...r.probabilities.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([t, p]) => [t, Number(Math.log(p).toFixed(6))]));
    if (greedy.length >= c.greedy_tokens.length) break;
  }
  await context.dispose();
  out.push({prompt: c.prompt, prompt_tokens: c.prompt_tokens, greedy_tokens: greedy,
            top_logprobs: top});
}
console.log("[\n" + out.map((c) => JSON.stringify(c)).join(",\n") + "\n]");
