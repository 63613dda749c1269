import pino from 'pino';
/** Paths pino blanks in every log object, as a second line of defence: nothing logs these on purpose. */
export const REDACT_PATHS = [
    'req.headers.authorization',
    'req.headers["api-key"]',
    'req.headers.cookie',
    'headers.authorization',
    'headers["api-key"]',
    'headers.cookie',
    'authorization',
    'apiKey',
    'upstreamKey',
    'key',
];
/** The operator's log (start-up, reloads, problems): JSON lines on stdout. */
export function createLogger(level) {
    return pino({ level, base: { app: 'keyward' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}
//# sourceMappingURL=logger.js.map