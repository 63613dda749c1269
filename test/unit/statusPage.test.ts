import type { IncomingMessage } from 'node:http';
import express from 'express';
import request from 'supertest';
import { describe, expect, it, vi } from 'vitest';
import { extractKey } from '../../src/auth/credentials.js';
import { humanDuration } from '../../src/web/statusHtml.js';
import { keyFromBasicAuth, statusPage, type StatusAccess, type StatusData } from '../../src/web/statusPage.js';

const NOW = Date.UTC(2025, 5, 1, 15, 30, 0);
const UPTIME_S = 3 * 3600 + 12 * 60 + 7;
const GOOD_KEY = 'kw-good-key';
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

function sampleData(): StatusData {
  return {
    version: '9.8.7',
    startedAt: NOW - UPTIME_S * 1000,
    keys: { active: 5, disabled: 2, expired: 1 },
    pool: [
      {
        id: 'primary', masked: 'sk-…a1b2', state: 'healthy', served: 1234, failures: 3,
        last_error: '429 rate_limit_exceeded', last_error_at: '2025-06-01T14:00:00.000Z', cool_until: null,
      },
      {
        id: 'backup', masked: 'sk-…c3d4', state: 'cooling', served: 17, failures: 9,
        last_error: null, last_error_at: null, cool_until: '2025-06-01T15:31:00.000Z',
      },
    ],
    today: { requests: 4321, input_tokens: 1_234_567, output_tokens: 89_012, total_tokens: 1_323_579, cost_usd: 0.0123456 },
  };
}

/** What the test apps accept as a key: Bearer / api-key as the gateway does, plus Basic for browsers. */
function isAuthorized(req: IncomingMessage): boolean {
  return (extractKey(req.headers) ?? keyFromBasicAuth(req.headers.authorization)) === GOOD_KEY;
}

function appWith(access: StatusAccess, data: () => StatusData = sampleData, auth = isAuthorized) {
  const app = express();
  app.get('/', statusPage({ access, data, isAuthorized: auth, now: () => NOW }));
  return app;
}

const basic = (userPass: string): string => `Basic ${Buffer.from(userPass).toString('base64')}`;

function expectNoStore(res: request.Response): void {
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['vary']).toMatch(/\bAccept\b/);
}

describe('status page: JSON', () => {
  const expected = {
    version: '9.8.7',
    uptime_s: UPTIME_S,
    base_url: 'http://gw.example.com:8080/v1',
    keys: { active: 5, disabled: 2, expired: 1 },
    upstream_keys: sampleData().pool,
    today: sampleData().today,
  };

  it('Accept: application/json gets exactly the given fields', async () => {
    const res = await request(appWith('public')).get('/').set('Host', 'gw.example.com:8080').set('Accept', 'application/json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual(expected);
    expectNoStore(res);
  });

  it('?format=json gets JSON even when the client prefers HTML', async () => {
    const res = await request(appWith('public')).get('/?format=json').set('Host', 'gw.example.com:8080').set('Accept', BROWSER_ACCEPT);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual(expected);
  });

  it('a stray property on what data() returns is not passed on', async () => {
    const leaky = (): StatusData => {
      const d = sampleData();
      Object.assign(d.pool[0]!, { key: 'sk-proj-FULLSECRETKEY0000' });
      Object.assign(d, { upstreamKey: 'sk-proj-FULLSECRETKEY0000' });
      return d;
    };
    const json = await request(appWith('public', leaky)).get('/').set('Accept', 'application/json');
    expect(json.status).toBe(200);
    expect(Object.keys(json.body.upstream_keys[0]).sort()).toEqual(
      ['cool_until', 'failures', 'id', 'last_error', 'last_error_at', 'masked', 'served', 'state'],
    );
    expect(json.text).not.toContain('FULLSECRET');
    const html = await request(appWith('public', leaky)).get('/').set('Accept', BROWSER_ACCEPT);
    expect(html.status).toBe(200);
    expect(html.text).not.toContain('FULLSECRET');
  });
});

describe('status page: HTML', () => {
  it('shows version, uptime, base URL, snippet, key counts, upstream table and today', async () => {
    const res = await request(appWith('public')).get('/').set('Host', 'gw.example.com:8080').set('Accept', BROWSER_ACCEPT);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expectNoStore(res);
    const html = res.text;
    expect(html).toContain('version 9.8.7');
    expect(html).toContain('up 3 h 12 min');
    expect(html).toContain('<code>http://gw.example.com:8080/v1</code>');
    expect(html).toContain('export OPENAI_BASE_URL="http://gw.example.com:8080/v1"');
    expect(html).toContain('OpenAI(base_url="http://gw.example.com:8080/v1"');
    expect(html).toContain('<dt>Active</dt><dd>5</dd>');
    expect(html).toContain('<dt>Disabled</dt><dd>2</dd>');
    expect(html).toContain('<dt>Expired</dt><dd>1</dd>');
    expect(html).toContain('<code>sk-…a1b2</code>');
    expect(html).toContain('<code>sk-…c3d4</code>');
    expect(html).toContain('<td class="ok">healthy</td>');
    expect(html).toContain('cooling<br><span class="muted">until 2025-06-01T15:31:00.000Z</span>');
    expect(html).toContain('<td class="n">1,234</td><td class="n">3</td>');
    expect(html).toContain('429 rate_limit_exceeded<br><span class="muted">2025-06-01T14:00:00.000Z</span>');
    expect(html).toContain('(UTC, 2025-06-01)');
    expect(html).toContain('<dt>Requests</dt><dd>4,321</dd>');
    expect(html).toContain('<dt>Input tokens</dt><dd>1,234,567</dd>');
    expect(html).toContain('<dt>Output tokens</dt><dd>89,012</dd>');
    expect(html).toContain('<dt>Total tokens</dt><dd>1,323,579</dd>');
    expect(html).toContain('<dt>Cost</dt><dd>$0.012346</dd>');
  });

  it('is the default when the client names no preference', async () => {
    const res = await request(appWith('public')).get('/').set('Accept', '*/*');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
  });

  it('is self-contained: no scripts, no external assets, and a policy forbidding both', async () => {
    const res = await request(appWith('public')).get('/').set('Accept', BROWSER_ACCEPT);
    expect(res.text).not.toMatch(/<(script|link|img|iframe|object|embed)\b/i);
    expect(res.text).not.toMatch(/\b(src|href)\s*=/i);
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
  });

  it('escapes every interpolated value, including a full key passed by mistake', async () => {
    const hostile = (): StatusData => {
      const d = sampleData();
      d.version = '1.0"><b>v';
      d.pool[0]!.id = '<script>alert(1)</script>';
      d.pool[0]!.state = '<i>odd</i>';
      d.pool[0]!.last_error = "401 for sk-proj-abc<def>&'x'";
      return d;
    };
    const res = await request(appWith('public', hostile)).get('/').set('Accept', BROWSER_ACCEPT);
    expect(res.status).toBe(200);
    expect(res.text).not.toContain('<script>');
    expect(res.text).toContain('&#60;script&#62;alert(1)&#60;/script&#62;');
    expect(res.text).toContain('version 1.0&#34;&#62;&#60;b&#62;v');
    expect(res.text).not.toContain('<i>odd</i>');
    // An unknown state gets no colour class, and its text is escaped.
    expect(res.text).toContain('<td>&#60;i&#62;odd&#60;/i&#62;</td>');
    // Only escaped, not scrubbed: keeping secrets out is data()'s job.
    expect(res.text).toContain('401 for sk-proj-abc&#60;def&#62;&#38;&#39;x&#39;');
  });

  it('says so when the pool is empty', async () => {
    const res = await request(appWith('public', () => ({ ...sampleData(), pool: [] }))).get('/').set('Accept', BROWSER_ACCEPT);
    expect(res.text).toContain('No upstream keys configured.');
    expect(res.text).not.toContain('<code>sk-');
  });
});

describe('status page: base URL', () => {
  async function baseUrl(headers: Record<string, string>): Promise<string> {
    let r = request(appWith('public')).get('/').set('Accept', 'application/json');
    for (const [k, v] of Object.entries(headers)) r = r.set(k, v);
    const res = await r;
    expect(res.status).toBe(200);
    return (res.body as { base_url: string }).base_url;
  }

  it('takes the host from Host and the protocol from the connection', async () => {
    expect(await baseUrl({ Host: 'keyward.internal:9000' })).toBe('http://keyward.internal:9000/v1');
  });

  it('prefers x-forwarded-proto (first of a list)', async () => {
    expect(await baseUrl({ Host: 'ai.example.org', 'X-Forwarded-Proto': 'https' })).toBe('https://ai.example.org/v1');
    expect(await baseUrl({ Host: 'ai.example.org', 'X-Forwarded-Proto': 'https, http' })).toBe('https://ai.example.org/v1');
  });

  it('ignores an x-forwarded-proto that is not http or https', async () => {
    expect(await baseUrl({ Host: 'ai.example.org', 'X-Forwarded-Proto': 'javascript' })).toBe('http://ai.example.org/v1');
  });

  it('escapes a hostile Host header in the HTML', async () => {
    const res = await request(appWith('public')).get('/').set('Host', 'a"><b>x').set('Accept', BROWSER_ACCEPT);
    expect(res.text).not.toContain('<b>x');
    expect(res.text).toContain('http://a&#34;&#62;&#60;b&#62;x/v1');
  });
});

describe('status page: access', () => {
  it('keyed without a key: 401 in OpenAI shape for API clients', async () => {
    const res = await request(appWith('keyed')).get('/').set('Accept', 'application/json');
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual({
      error: { message: expect.any(String), type: 'invalid_request_error', param: null, code: 'invalid_api_key' },
    });
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(res.text).not.toContain('9.8.7');
    expectNoStore(res);
  });

  it('keyed without a key: 401 with a Basic challenge for a browser', async () => {
    const res = await request(appWith('keyed')).get('/').set('Accept', BROWSER_ACCEPT);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Basic realm="Keyward", charset="UTF-8"');
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toContain('enter your proxy key as the password');
    expect(res.text).not.toContain('9.8.7');
    expectNoStore(res);
  });

  it('keyed with a wrong key: 401', async () => {
    const res = await request(appWith('keyed')).get('/').set('Accept', 'application/json').set('Authorization', 'Bearer kw-wrong');
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('invalid_api_key');
  });

  it.each([
    ['Bearer', { Authorization: `Bearer ${GOOD_KEY}` }],
    ['api-key', { 'api-key': GOOD_KEY }],
    ['Basic with a blank user', { Authorization: basic(`:${GOOD_KEY}`) }],
  ])('keyed with %s: 200', async (_name, headers: Record<string, string>) => {
    let r = request(appWith('keyed')).get('/').set('Accept', 'application/json');
    for (const [k, v] of Object.entries(headers)) r = r.set(k, v);
    const res = await r;
    expect(res.status).toBe(200);
    expect(res.body.version).toBe('9.8.7');
    expectNoStore(res);
  });

  it('keyed hands the request itself to isAuthorized', async () => {
    const auth = vi.fn((req: IncomingMessage) => req.headers['x-test'] === 'yes');
    const res = await request(appWith('keyed', sampleData, auth)).get('/').set('X-Test', 'yes').set('Accept', 'application/json');
    expect(res.status).toBe(200);
    expect(auth).toHaveBeenCalledTimes(1);
  });

  it('public: 200 without a key, and no key check at all', async () => {
    const auth = vi.fn(() => false);
    const res = await request(appWith('public', sampleData, auth)).get('/').set('Accept', 'application/json');
    expect(res.status).toBe(200);
    expect(res.body.version).toBe('9.8.7');
    expect(auth).not.toHaveBeenCalled();
  });

  it('off: 404 in OpenAI shape, even with a valid key, without reading data', async () => {
    const data = vi.fn(sampleData);
    const res = await request(appWith('off', data)).get('/').set('Accept', BROWSER_ACCEPT).set('Authorization', `Bearer ${GOOD_KEY}`);
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual({
      error: { message: expect.stringContaining('Invalid URL (GET /)'), type: 'invalid_request_error', param: null, code: 'not_found' },
    });
    expect(data).not.toHaveBeenCalled();
    expectNoStore(res);
  });

  it('an unknown access value is refused at start, not treated as public', () => {
    expect(() => statusPage({ access: 'pubic' as StatusAccess, data: sampleData, isAuthorized })).toThrow(/unknown access/);
  });
});

describe('keyFromBasicAuth', () => {
  it('returns the password and ignores the user', () => {
    expect(keyFromBasicAuth(basic(':kw-abc'))).toBe('kw-abc');
    expect(keyFromBasicAuth(basic('anyone:kw-abc'))).toBe('kw-abc');
    expect(keyFromBasicAuth(basic(':kw:with:colons'))).toBe('kw:with:colons');
    expect(keyFromBasicAuth(`basic  ${Buffer.from(':kw-abc').toString('base64')} `)).toBe('kw-abc');
  });

  it('returns undefined for anything else', () => {
    expect(keyFromBasicAuth(undefined)).toBeUndefined();
    expect(keyFromBasicAuth('')).toBeUndefined();
    expect(keyFromBasicAuth('Bearer kw-abc')).toBeUndefined();
    expect(keyFromBasicAuth(basic('no-colon'))).toBeUndefined();
    expect(keyFromBasicAuth(basic('user:'))).toBeUndefined();
    expect(keyFromBasicAuth('Basic not*base64')).toBeUndefined();
  });
});

describe('humanDuration', () => {
  it('reads like a person would say it', () => {
    expect(humanDuration(42)).toBe('42 s');
    expect(humanDuration(7 * 60 + 59)).toBe('7 min');
    expect(humanDuration(UPTIME_S)).toBe('3 h 12 min');
    expect(humanDuration(2 * 86_400 + 5 * 3600 + 59)).toBe('2 d 5 h');
  });
});
