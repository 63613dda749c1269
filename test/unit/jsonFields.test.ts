import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { usageFromJson } from '../../src/usage/extract.js';
import { modelAndUsage, topLevelKeyCount } from '../../src/usage/jsonFields.js';
import type { Endpoint } from '../../src/usage/endpoint.js';
import { FIXTURES, fixtureText } from './openaiFixtures.js';

const ENDPOINT: Record<string, Endpoint> = {
  'chat-completion.json': 'chat.completions',
  'completion-legacy.json': 'completions',
  'responses.json': 'responses',
  'embeddings.json': 'embeddings',
  'image-generation.json': 'images.generations',
  'transcription-tokens.json': 'audio.transcriptions',
  'transcription-duration-verbose.json': 'audio.transcriptions',
  'moderation.json': 'moderations',
};

describe('modelAndUsage (reads two fields without parsing the body)', () => {
  it.each(Object.keys(ENDPOINT))('%s: same model and usage as a full parse', (name) => {
    const text = fixtureText(name);
    const fields = modelAndUsage(Buffer.from(text));
    expect(fields).toBeDefined();
    const endpoint = ENDPOINT[name]!;
    expect(usageFromJson(endpoint, fields)).toEqual(usageFromJson(endpoint, JSON.parse(text)));
  });

  it('every JSON fixture in the shared folder is covered above', () => {
    const json = readdirSync(FIXTURES).filter((f) => f.endsWith('.json') && !f.startsWith('error-') && !f.startsWith('headers-') && !f.startsWith('org-'));
    expect(json.sort()).toEqual(Object.keys(ENDPOINT).sort());
  });

  it('keys inside strings are not keys; compact and spaced JSON alike; odd shapes give up', () => {
    const tricky = '{"model":"gpt-4o-mini","choices":[{"message":{"content":"say \\"usage\\": {\\"total\\": 9}"}}],"usage" : {"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}';
    expect(modelAndUsage(Buffer.from(tricky))).toEqual({ model: 'gpt-4o-mini', usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } });
    expect(modelAndUsage(Buffer.from('{"usage":null,"model":"m"}'))).toEqual({ model: 'm' });
    expect(modelAndUsage(Buffer.from('{"usage":{"a":1'))).toBeUndefined();
    expect(modelAndUsage(Buffer.from('{"model":42}'))).toBeUndefined();
  });

  it('topLevelKeyCount: duplicate and escaped keys at the top level only', () => {
    expect(topLevelKeyCount(Buffer.from('{"model":"a","x":{"model":"b"},"m":["model"]}'), 'model')).toBe(1);
    expect(topLevelKeyCount(Buffer.from('{"model":"o1-pro", "model" : "gpt-4o-mini"}'), 'model')).toBe(2);
    expect(topLevelKeyCount(Buffer.from('{"mod\\u0065l":"o1-pro","model":"gpt-4o-mini"}'), 'model')).toBe(2);
  });
});
