#!/usr/bin/env node
// Load generator for any OpenAI-compatible server (pareto serve, llama-server, vLLM): sends a
// workload's prompts as streamed /v1/completions at several concurrencies and reports throughput,
// time to first token and inter-token latency (mean, p50, p99). Node.js 18+, no packages.
//
//   node scripts/bench-serve.mjs --url http://127.0.0.1:8080 \
//     --workload ../shared/workloads/stories.jsonl --concurrency 1,4,8,16 [--requests 32] \
//     [--max-tokens N] [--temperature 0] [--ignore-eos] [--json out.json] [--label NAME]
//   node scripts/bench-serve.mjs --url ... --prefix-test 1000 --workload ...
//     (TTFT of a request whose ~1000-token prefix an earlier request sent, against a cold one)
//   node scripts/bench-serve.mjs --url ... --soak 600 --concurrency 8 --disconnect 0.25 --pid PID
//     (streams for 600 s; a quarter of them hang up after their first chunk; every other request
//     must complete; the server's RSS (from /proc/PID) is sampled: first minute vs the end)
//
// Inter-token latency is the gap between consecutive streamed chunks that carry text (servers
// stream one token per chunk; speculative decoding may deliver several at once).
import { readFileSync, writeFileSync } from 'node:fs';

function parseArgs(argv) {
  const a = { concurrency: '1,4,8,16', temperature: 0, label: '', requests: 0 };
  for (let i = 2; i < argv.length; ++i) {
    const key = argv[i].replace(/^--/, '').replace(/-/g, '_');
    if (key === 'ignore_eos') { a.ignore_eos = true; continue; }
    a[key] = argv[++i];
  }
  if (!a.url || !a.workload) {
    console.error('usage: bench-serve.mjs --url URL --workload FILE.jsonl [--concurrency 1,4,8,16] ' +
                  '[--requests N] [--max-tokens N] [--temperature T] [--ignore-eos] [--model NAME] ' +
                  '[--json OUT] [--label NAME] [--prefix-test TOKENS]');
    process.exit(2);
  }
  return a;
}

const args = parseArgs(process.argv);
const workload = readFileSync(args.workload, 'utf8').split('\n').filter((l) => l.trim())
  .map((l) => JSON.parse(l));

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
function stats(values) {
  const s = [...values].sort((x, y) => x - y);
  const mean = s.length ? s.reduce((x, y) => x + y, 0) / s.length : 0;
  return { mean, p50: percentile(s, 50), p99: percentile(s, 99), n: s.length };
}

let retried = 0;  // requests sent again after the connection closed before any response

// One streamed completion: resolves with its TTFT, chunk gaps and token count.
async function streamOne(prompt, maxTokens, hangUp = false) {
  const body = {
    prompt, max_tokens: maxTokens, temperature: Number(args.temperature), stream: true,
    stream_options: { include_usage: true },
  };
  if (args.model) body.model = args.model;
  if (args.ignore_eos) body.ignore_eos = true;
  const start = performance.now();
  const abort = new AbortController();
  const send = () => fetch(`${args.url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    signal: abort.signal,
  });
  // A server that closes idle keep-alive connections as the next request goes out on one of them
  // (seen with llama-server): no response came, so the request is sent again, as the official
  // clients do (up to 3 times), and counted.
  let res;
  for (let attempt = 0; ; ++attempt) {
    try {
      res = await send();
      break;
    } catch (e) {
      if (attempt === 3) throw e;
      ++retried;
    }
  }
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let first = 0;
  let last = 0;
  const gaps = [];
  let chunks = 0;
  let usageTokens = -1;
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(JSON.stringify(j.error));
        if (j.usage && j.usage.completion_tokens !== undefined) usageTokens = j.usage.completion_tokens;
        const text = j.choices?.[0]?.text ?? j.choices?.[0]?.delta?.content ?? '';
        if (!text) continue;
        const now = performance.now();
        if (hangUp) {  // the client goes away mid-stream
          abort.abort();
          return { ttft: now - start, gaps, tokens: 0, total: now - start, hungUp: true };
        }
        if (!first) first = now; else gaps.push(now - last);
        last = now;
        ++chunks;
      }
    }
  }
  return { ttft: first ? first - start : performance.now() - start, gaps,
           tokens: usageTokens >= 0 ? usageTokens : chunks, total: performance.now() - start };
}

async function runLevel(concurrency, n) {
  let next = 0;
  const results = [];
  const begin = performance.now();
  async function worker() {
    while (next < n) {
      const w = workload[next++ % workload.length];
      const maxTokens = args.max_tokens ? Number(args.max_tokens) : w.max_tokens;
      results.push(await streamOne(w.prompt, maxTokens));
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - begin) / 1000;
  const tokens = results.reduce((x, r) => x + r.tokens, 0);
  return {
    concurrency, requests: results.length, seconds, tokens,
    throughput: tokens / seconds,
    ttft_ms: stats(results.map((r) => r.ttft)),
    itl_ms: stats(results.flatMap((r) => r.gaps)),
  };
}

async function prefixTest(prefixTokens) {
  // ~4 characters a token for these tokenizers; the server's own tokenizer decides the count.
  let prefix = '';
  for (let i = 0; prefix.length < prefixTokens * 4; ++i) prefix += workload[i % workload.length].prompt + '\n';
  const ask = (tag, suffix) => streamOne(`${tag}\n${prefix}${suffix}`, 8);
  await ask('warm-up', 'x');  // loads whatever the server loads lazily
  const cold = await ask('cold', workload[0].prompt);  // a prefix no earlier request had
  const warm = await ask('cold', workload[1 % workload.length].prompt);  // shares cold's prefix
  return { prefix_chars: prefix.length, cold_ttft_ms: cold.ttft, warm_ttft_ms: warm.ttft,
           ratio: cold.ttft / warm.ttft };
}

function rssKiB(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
    return m ? Number(m[1]) : -1;
  } catch { return -1; }
}

async function soak(seconds, concurrency, disconnect) {
  const end = performance.now() + seconds * 1000;
  const counts = { completed: 0, hung_up: 0, failed: 0, errors: [] };
  const rss = [];
  let next = 0;
  const sampler = setInterval(() => { if (args.pid) rss.push([performance.now(), rssKiB(args.pid)]); }, 5000);
  async function worker() {
    while (performance.now() < end) {
      const i = next++;
      const w = workload[i % workload.length];
      const hangUp = disconnect > 0 && (i % Math.round(1 / disconnect)) === 0;
      try {
        const r = await streamOne(w.prompt, args.max_tokens ? Number(args.max_tokens) : w.max_tokens, hangUp);
        if (r.hungUp) ++counts.hung_up; else if (r.tokens > 0) ++counts.completed; else ++counts.failed;
      } catch (e) {
        if (hangUp && e.name === 'AbortError') { ++counts.hung_up; continue; }
        ++counts.failed;
        if (counts.errors.length < 5) counts.errors.push(String(e.message ?? e));
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  clearInterval(sampler);
  if (args.pid) rss.push([performance.now(), rssKiB(args.pid)]);
  const t0 = rss.length ? rss[0][0] : 0;
  const firstMinute = rss.filter(([t]) => t - t0 <= 60000).map(([, v]) => v);
  const base = firstMinute.length ? Math.max(...firstMinute) : -1;
  const last = rss.length ? rss[rss.length - 1][1] : -1;
  return { seconds, concurrency, disconnect, ...counts, retried, rss_first_minute_max_kib: base,
           rss_end_kib: last, rss_growth: base > 0 ? (last - base) / base : null };
}

const out = { label: args.label, url: args.url, workload: args.workload, levels: [] };
if (args.soak) {
  const c = Number(args.concurrency.split(',')[0]);
  out.soak = await soak(Number(args.soak), c, Number(args.disconnect ?? 0));
  console.log(JSON.stringify(out.soak));
  if (out.soak.failed > 0) process.exitCode = 1;
} else if (args.prefix_test) {
  out.prefix = await prefixTest(Number(args.prefix_test));
  console.log(`prefix test (${out.prefix.prefix_chars} chars): cold TTFT ` +
              `${out.prefix.cold_ttft_ms.toFixed(1)} ms, shared-prefix TTFT ` +
              `${out.prefix.warm_ttft_ms.toFixed(1)} ms, ratio ${out.prefix.ratio.toFixed(2)}x`);
} else {
  console.log(`| ${args.label || 'server'} streams | requests | tok/s | TTFT mean / p50 / p99 ms | ` +
              'ITL mean / p50 / p99 ms |');
  console.log('|---:|---:|---:|---|---|');
  await streamOne(workload[0].prompt, 4);  // warm-up
  for (const c of args.concurrency.split(',').map(Number)) {
    const n = Number(args.requests) || Math.max(2 * c, workload.length);
    const r = await runLevel(c, n);
    out.levels.push(r);
    const f = (s) => `${s.mean.toFixed(1)} / ${s.p50.toFixed(1)} / ${s.p99.toFixed(1)}`;
    console.log(`| ${c} | ${r.requests} | ${r.throughput.toFixed(1)} | ${f(r.ttft_ms)} | ${f(r.itl_ms)} |`);
  }
  if (retried > 0) {
    console.log(`(${retried} requests sent again: the server closed the connection before answering)`);
  }
  out.retried = retried;
}
if (args.json) writeFileSync(args.json, JSON.stringify(out, null, 2));
