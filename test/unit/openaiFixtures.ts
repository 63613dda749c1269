// Reads the shared OpenAI fixtures (/work/shared/openai-fixtures) for the usage tests.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Endpoint } from '../../src/usage/endpoint.js';
import { usageFromJson, usageFromSseEvent } from '../../src/usage/extract.js';
import type { Extracted } from '../../src/usage/types.js';

export const FIXTURES = resolve(process.cwd(), '../shared/openai-fixtures');

export const fixtureText = (name: string): string => readFileSync(resolve(FIXTURES, name), 'utf8');
export const fixtureJson = (name: string): unknown => JSON.parse(fixtureText(name));

export interface SseEvent {
  event: string | undefined;
  data: string;
}

/** Splits an SSE body (LF line endings, events separated by a blank line) into events. */
export function sseEvents(body: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of body.split(/\n\n+/)) {
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length > 0) events.push({ event, data: data.join('\n') });
  }
  return events;
}

/** Feeds every JSON `data:` of a fixture stream through usageFromSseEvent and merges the results. */
export function extractSse(endpoint: Endpoint, name: string): Extracted {
  const out: Extracted = {};
  for (const { event, data } of sseEvents(fixtureText(name))) {
    if (data === '[DONE]') continue;
    const found = usageFromSseEvent(endpoint, event, JSON.parse(data));
    if (found?.model !== undefined) out.model = found.model;
    if (found?.usage !== undefined) out.usage = { ...out.usage, ...found.usage };
  }
  return out;
}

/** Extracts a fixture, JSON or SSE by its extension. */
export const extractFixture = (endpoint: Endpoint, name: string): Extracted =>
  name.endsWith('.sse') ? extractSse(endpoint, name) : usageFromJson(endpoint, fixtureJson(name));
