import type { ServerResponse } from 'node:http';
import { requestIdOf } from './context.js';

/** OpenAI's error body: every error Keyward itself answers has this shape. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function errorBody(
  message: string,
  type: string,
  code: string | null = null,
  param: string | null = null,
): OpenAIErrorBody {
  return { error: { message, type, param, code } };
}

/** Writes an OpenAI-shaped error unless the response has already started. */
export function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  type: string,
  code: string | null = null,
  param: string | null = null,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    // Too late for a status: cut the response so the client sees an error, not a clean end.
    res.destroy();
    return;
  }
  const body = JSON.stringify(errorBody(message, type, code, param));
  const id = requestIdOf(res);
  res.writeHead(status, {
    ...(id ? { 'x-request-id': id, 'x-keyward-request-id': id } : {}),
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
