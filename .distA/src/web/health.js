/** Liveness for load balancers and `npm start` scripts: no key needed, no secrets in it. */
export function health(startedAt, version) {
    return (_req, res) => {
        res.json({ status: 'ok', version, uptime_s: Math.round((Date.now() - startedAt) / 1000) });
    };
}
//# sourceMappingURL=health.js.map