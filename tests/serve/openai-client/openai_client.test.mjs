// The official `openai` npm client drives a real `pareto serve` on stories260K: chat and
// completions, streamed and not, usage, stop strings, seed reproducibility, a 400 surfacing as the
// client's BadRequestError, listing models, and greedy output equal to `pareto run`'s.
//
//   PARETO_BIN=build/tools/pareto PARETO_SHARED=../shared node --test openai_client.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import OpenAI from 'openai';

const bin = process.env.PARETO_BIN;
const shared = process.env.PARETO_SHARED || process.env.PARETO_DEFAULT_SHARED;
if (!bin || !shared) throw new Error('set PARETO_BIN and PARETO_SHARED');
const model = `${shared}/models/stories260K/stories260K.gguf`;

let server;
let client;

// Starts `pareto serve --port 0` and resolves with the port it prints once bound.
function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(bin, ['serve', '-m', model, '--port', '0', '-t', '2', '--parallel', '8',
                         '--batch-invariant'],
                   { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    server.stderr.on('data', (chunk) => {
      stderr += chunk.toString();
      const m = stderr.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m && !server.port) {
        server.port = Number(m[1]);
        resolve(server.port);
      }
    });
    server.on('exit', (code) => reject(new Error(`pareto serve exited (${code}): ${stderr}`)));
  });
}

async function waitHealthy(port) {
  for (let i = 0; i < 600; ++i) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('server never became healthy');
}

before(async () => {
  const port = await startServer();
  await waitHealthy(port);
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(() => {
  if (server) server.kill('SIGTERM');
});

function pareto_run(prompt, n) {
  const out = execFileSync(bin, ['run', '-m', model, '-p', prompt, '-n', String(n), '--temp', '0',
                                 '--json', '-t', '2', '--batch-invariant'],
                           { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out).text;
}

test('lists the model', async () => {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].object, 'model');
  assert.ok(models.data[0].id.length > 0);
});

test('completion: greedy text equals pareto run, with usage', async () => {
  const r = await client.completions.create({
    model: 'stories260K', prompt: 'Once upon a time', max_tokens: 32, temperature: 0,
  });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, pareto_run('Once upon a time', 32));
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 32);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 32);
});

test('8 concurrent greedy completions each equal pareto run', async () => {
  const prompts = ['Once upon a time', 'The cat', 'Lily wanted', 'One day', 'Tom and his dog',
                   'The sun', 'A little bird', 'Mom said'];
  const replies = await Promise.all(prompts.map((prompt) => client.completions.create({
    model: 'stories260K', prompt, max_tokens: 24, temperature: 0,
  })));
  replies.forEach((r, i) => assert.equal(r.choices[0].text, pareto_run(prompts[i], 24), prompts[i]));
});

test('chat: whole and streamed agree; the stream ends with finish_reason and usage', async () => {
  const messages = [{ role: 'system', content: 'You tell stories.' },
                    { role: 'user', content: 'Tell me about a dog.' }];
  const whole = await client.chat.completions.create({
    model: 'stories260K', messages, max_tokens: 24, temperature: 0,
  });
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.choices[0].message.role, 'assistant');
  const stream = await client.chat.completions.create({
    model: 'stories260K', messages, max_tokens: 24, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let role = null;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    const c = chunk.choices[0];
    if (c.delta.role) role = c.delta.role;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.equal(role, 'assistant');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 24);
  assert.equal(usage.prompt_tokens, whole.usage.prompt_tokens);
});

test('completion stream joins to the whole text', async () => {
  const whole = await client.completions.create({
    model: 'stories260K', prompt: 'The little girl', max_tokens: 20, temperature: 0,
  });
  const stream = await client.completions.create({
    model: 'stories260K', prompt: 'The little girl', max_tokens: 20, temperature: 0, stream: true,
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, whole.choices[0].text);
});

test('stop strings end the text before them', async () => {
  const full = pareto_run('Once upon a time', 40);
  const stop = full.slice(10, 14);
  const r = await client.completions.create({
    model: 'stories260K', prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop: [stop],
  });
  assert.equal(r.choices[0].text, full.slice(0, full.indexOf(stop)));
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('a seed makes sampling reproducible; other seeds differ', async () => {
  const ask = (seed) => client.chat.completions.create({
    model: 'stories260K', messages: [{ role: 'user', content: 'Tell a story' }], max_tokens: 32,
    temperature: 1.0, seed,
  });
  const [a, b, c] = await Promise.all([ask(7), ask(7), ask(8)]);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.notEqual(a.choices[0].message.content, c.choices[0].message.content);
});

test('a bad parameter is the client BadRequestError naming it', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'stories260K', messages: [{ role: 'user', content: 'hi' }], temperature: -1,
    }),
    (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name}`);
      assert.equal(e.status, 400);
      assert.equal(e.param, 'temperature');
      assert.match(e.message, /temperature/);
      return true;
    });
});
