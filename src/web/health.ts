import type { IncomingMessage, ServerResponse } from 'node:http';

/** Liveness for load balancers and `npm start` scripts: no key needed, no secrets in it. */
export function health(startedAt: number, version: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const body = JSON.stringify({ status: 'ok', version, uptime_s: Math.round((Date.now() - startedAt) / 1000) });
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
