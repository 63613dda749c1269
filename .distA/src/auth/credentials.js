/**
 * Headers a client must never get past the gateway: its own credentials, and the OpenAI
 * organization/project selectors (they would let a client bill another org the upstream key can reach).
 */
export const CLIENT_CREDENTIAL_HEADERS = [
    'authorization',
    'api-key',
    'x-api-key',
    'cookie',
    'proxy-authorization',
    'openai-organization',
    'openai-project',
];
/** The proxy key from `Authorization: Bearer <key>` (every OpenAI SDK) or `api-key: <key>`. */
export function extractKey(headers) {
    const auth = headers.authorization;
    if (auth) {
        const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
        if (m)
            return m[1];
    }
    const apiKey = headers['api-key'];
    if (typeof apiKey === 'string' && apiKey.trim())
        return apiKey.trim();
    return undefined;
}
//# sourceMappingURL=credentials.js.map