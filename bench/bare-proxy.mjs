// The baseline: the least a Node proxy in front of OpenAI can do. node:http in and node:http out,
// both bodies piped (never buffered), the client's key checked and swapped for the upstream key,
// upstream connections pooled by a keep-alive agent. No metering, no logging: the practical floor
// Keyward is measured against.
//
// Env: PORT (0 = any free port)  UPSTREAM_URL  UPSTREAM_KEY  CLIENT_KEY
// Prints one JSON line {"msg":"bare proxy listening","url":...} when ready.
import http from 'node:http';

const upstream = new URL(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:18000');
const upstreamAuth = `Bearer ${process.env.UPSTREAM_KEY}`;
const clientKey = process.env.CLIENT_KEY;
const clientAuth = `Bearer ${clientKey}`;
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const UNAUTHORIZED = '{"error":{"message":"Invalid API key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}';
const BAD_GATEWAY = '{"error":{"message":"Upstream request failed","type":"proxy_error","param":null,"code":null}}';

const server = http.createServer((req, res) => {
  const { headers } = req;
  if (headers.authorization !== clientAuth && headers['api-key'] !== clientKey) {
    req.resume();
    res.writeHead(401, { 'content-type': 'application/json' });
    return void res.end(UNAUTHORIZED);
  }
  const outHeaders = {};
  for (const name in headers) {
    if (name !== 'api-key' && name !== 'connection' && name !== 'keep-alive' && name !== 'host') outHeaders[name] = headers[name];
  }
  outHeaders.host = upstream.host;
  outHeaders.authorization = upstreamAuth;

  const out = http.request(
    { hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: outHeaders, agent },
    (upRes) => {
      const h = upRes.headers;
      delete h.connection;
      delete h['keep-alive'];
      res.writeHead(upRes.statusCode, h);
      upRes.pipe(res);
    },
  );
  out.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
    res.end(BAD_GATEWAY);
  });
  res.on('close', () => {
    if (!res.writableFinished) out.destroy();
  });
  req.pipe(out);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'bare proxy listening', url: `http://127.0.0.1:${server.address().port}`, upstream: upstream.origin }));
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
