import http from 'node:http';
import https from 'node:https';
import { upstreamPath } from '../proxy/upstreamPath.js';
/**
 * The revival check for a cooled or exhausted upstream key: GET /v1/models with it. Free, but it
 * answers 200 even for a key that is out of quota; such a key comes back, fails once on a real
 * request (which then moves to another key) and is marked exhausted again for another 5 minutes.
 */
export function probeUpstreamKey(baseUrl, timeoutMs = 10_000) {
    const transport = baseUrl.protocol === 'https:' ? https : http;
    return (key) => new Promise((resolve) => {
        const req = transport.request(new URL(upstreamPath(baseUrl, '/models'), baseUrl), { method: 'GET', headers: { ...key.headers }, timeout: timeoutMs }, (res) => {
            res.resume();
            resolve(res.statusCode === 200);
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(false));
        req.end();
    });
}
//# sourceMappingURL=probe.js.map